#!/usr/bin/env python3
"""Video activity recipe: corpus -> manifests -> backbone -> embeddings -> train (+ ablation)
-> evaluate -> export.

    python recipes/video_activity/run.py                           # everything, embedded corpus
    python recipes/video_activity/run.py --stage 4 --stop-stage 6  # retrain and evaluate
    python recipes/video_activity/run.py --data /corpora/UCF101 backbone.weights=imagenet
    python recipes/video_activity/run.py model.pooling=mean model.encoder.cell=gru

Stages: 0 corpus, 1 manifests, 2 backbone, 3 embed, 4 train, 5 ablation, 6 evaluate, 7 export.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without install

from pipeline.workflow.video_activity import main  # noqa: E402

if __name__ == "__main__":
    main()
