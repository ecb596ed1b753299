#!/usr/bin/env python3
"""Each training-data effect on and off, on a finished speech run (see pipeline/workflow/speech_effects.py).

    python recipes/speech_ctc/effects.py --base exp/demo --out exp/effects           # everything
    python recipes/speech_ctc/effects.py --base exp/demo --out exp/effects --only corrupt
    python recipes/speech_ctc/effects.py --base exp/demo --out exp/effects --only train --conditions reverb codec
    python recipes/speech_ctc/effects.py --base exp/demo --out exp/effects --only score

Steps: ``corrupt`` writes the test split through each effect, ``train`` trains one model per
condition (resumable; a finished one is skipped), ``score`` decodes every test copy with every
trained model and prints the table (also ``<out>/effects.json`` and ``<out>/effects.md``).
``--updates 2`` trains every condition twice as long as the base run (use its own ``--out``).
Run two ``--only train`` processes with different ``--conditions`` to use two cores
(``--threads 1`` each).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without install


def main(argv: list[str] | None = None) -> int:
    import torch

    from pipeline.workflow.runner import setup_logging
    from pipeline.workflow.speech_effects import (
        conditions,
        corrupt_test,
        format_effects,
        score_all,
        train_condition,
    )

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=Path, required=True, help="a finished speech recipe run (exp dir)")
    p.add_argument("--out", type=Path, required=True, help="where the study's models, stores and table go")
    p.add_argument("--only", choices=("corrupt", "train", "score"), action="append",
                   help="run these steps only (repeatable); default all three")
    p.add_argument("--conditions", nargs="+", choices=conditions(), default=list(conditions()),
                   help="training conditions (default all; 'none' is the base run's model)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: the config's)")
    p.add_argument("--updates", type=float, default=1.0,
                   help="training updates per condition, as a multiple of the base run's (default 1)")
    args = p.parse_args(argv)
    steps = args.only or ["corrupt", "train", "score"]
    args.out.mkdir(parents=True, exist_ok=True)
    setup_logging(args.out / "log")
    if args.threads:
        torch.set_num_threads(args.threads)
    if "corrupt" in steps:
        corrupt_test(args.base, args.out, workers=args.threads)
    if "train" in steps:
        for name in args.conditions:
            if name != "none":
                train_condition(args.base, args.out, name, threads=args.threads, updates=args.updates)
    if "score" in steps:
        table = format_effects(score_all(args.base, args.out, tuple(args.conditions), args.updates))
        (args.out / "effects.md").write_text(table + "\n")
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
