#!/usr/bin/env python3
"""Makes a speech recipe's bundle the model that ships inside the package (float16 weights + LM).

    python recipes/speech_ctc/ship.py exp/speech_ctc_large/bundle --note "recipes/speech_ctc/conf/large.yaml"

Then run the tests (`make test`) and the engine benchmark on it, and update the README's model card.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without install

from pipeline.pretrained import SPEECH_MODEL, ship_speech_bundle  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="the recipe's bundle directory")
    parser.add_argument("--note", default="", help="how the bundle was made (recipe config, command)")
    parser.add_argument("--out", type=Path, default=SPEECH_MODEL, help=f"destination (default: {SPEECH_MODEL})")
    parser.add_argument("--quantize", choices=("none", "int8"), default="int8",
                        help="the ONNX graph's precision (default int8: on the unseen-engine test files as "
                             "accurate as float32 and 1.5x faster, docs/results.md; none: float32, lossless)")
    args = parser.parse_args()
    exp = args.bundle.parent
    results = json.loads((exp / "results.json").read_text())
    train = [json.loads(line) for line in (exp / "manifests" / "train.jsonl").read_text().splitlines() if line]
    card = {
        "made_by": args.note,
        "train_hours": round(sum(r["duration"] for r in train) / 3600, 2),
        "train_engines": sorted({r["engine"] for r in train if "engine" in r}),
        "unseen_engine_wer": {tag: groups.get("unseen-engines", {}).get("wer")
                              for tag, groups in results.get("engine_metrics", {}).items() if tag.startswith("test")},
    }
    out = ship_speech_bundle(args.bundle, args.out, card=card, quantize=args.quantize)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"shipped {args.bundle} -> {out} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
