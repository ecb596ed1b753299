#!/usr/bin/env python3
"""seqrec benchmark suite: writes exp/benchmarks/results.json and results.md.

    python recipes/benchmarks/run.py                 # full suite on exp/speech_ctc, exp/video_activity
    python recipes/benchmarks/run.py --quick         # small subsets, a few minutes
    python recipes/benchmarks/run.py --only transcribe coldstart --repeats 7
    python recipes/benchmarks/run.py --speech-exp /tmp/bench_speech --video-exp /tmp/bench_video

pocketsphinx (the peer for transcription) comes with `pip install -e '.[bench]'`; without it
those figures are skipped and said so. GPU figures are added when CUDA is available.
"""

import sys
from pathlib import Path

# The repository root instead of this folder, whose module names (report, speech, timing, video)
# must not shadow other packages' imports.
sys.path[0] = str(Path(__file__).resolve().parents[2])

from recipes.benchmarks.suite import main  # noqa: E402

if __name__ == "__main__":
    main()
