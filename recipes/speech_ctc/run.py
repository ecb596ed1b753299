#!/usr/bin/env python3
"""Speech CTC recipe: corpus -> manifests -> features -> train -> decode+score -> export.

    python recipes/speech_ctc/run.py                          # everything, embedded corpus
    python recipes/speech_ctc/run.py --stage 3 --stop-stage 4 # train and decode only
    python recipes/speech_ctc/run.py --data /corpora/LibriSpeech data.format=librispeech
    python recipes/speech_ctc/run.py train.max_epochs=30 model.encoder.cell=lstm

Stages: 0 corpus, 1 manifests, 2 features, 3 train, 4 decode, 5 export.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without install

from pipeline.workflow.speech_ctc import main  # noqa: E402

if __name__ == "__main__":
    main()
