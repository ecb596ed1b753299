#!/usr/bin/env python3
"""The model family side by side: what each upstream costs a user at inference.

    python recipes/benchmarks/family.py --bundle tiny=exp/s35_tiny/bundle \\
        --bundle base=exp/s35_base/bundle --audio long.wav --short short.wav --repeats 3

For every bundle, ``seqrec transcribe --model DIR`` runs in a fresh process on each file (the
default engine, with the bundle's word LM), and :func:`~recipes.benchmarks.timing.run_measured`
records its wall time and peak RSS. The bundles take turns within each round
(:func:`~recipes.benchmarks.timing.interleave`), so a change of machine load falls on all of
them. Reported per bundle and file: the median wall time, the real-time factor (wall / audio
seconds, start-up included) and the median peak RSS; per bundle its upstream and its size on
disk. The short file's wall time is the cold start a one-file user pays.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import soundfile as sf
import yaml

if __name__ == "__main__":  # the repository root, not this folder (its module names shadow others)
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from pipeline.io_utils import atomic_write_text
from recipes.benchmarks.speech import seqrec_command
from recipes.benchmarks.timing import BenchmarkError, interleave, machine_info, median, run_measured

log = logging.getLogger(__name__)


def bench_family(bundles: dict[str, Path], files: list[Path], repeats: int = 3) -> dict[str, Any]:
    """Wall time, RTF and peak RSS of ``seqrec transcribe`` for each bundle on each file.

    Returns:
        ``{name: {"upstream", "size_mb", "files": [{"file", "audio_s", "wall_s", "rtf",
        "peak_rss_mib", "runs"}, ...]}}``, medians over ``repeats`` rounds after one warm-up.
    """
    rss: dict[tuple[str, Path], list[float]] = {(n, f): [] for n in bundles for f in files}

    def side(name: str, bundle: Path, wav: Path):
        def run() -> float:
            cmd = [*seqrec_command(), "transcribe", "--model", str(bundle), str(wav)]
            res = run_measured(cmd, timeout=3600)
            if res.returncode != 0:
                raise BenchmarkError(f"{' '.join(cmd)} exited with {res.returncode}: {res.stderr.strip()[-500:]}")
            rss[name, wav].append(res.max_rss_bytes / 2**20)
            return res.wall_s

        return run

    sides = {f"{n}|{f}": side(n, b, f) for n, b in bundles.items() for f in files}
    walls = interleave(sides, repeats)
    out: dict[str, Any] = {}
    for name, bundle in bundles.items():
        cfg = yaml.safe_load((bundle / "config.yaml").read_text())
        rows = []
        for wav in files:
            seconds = sf.info(str(wav)).duration
            wall = median(walls[f"{name}|{wav}"])
            rows.append({
                "file": str(wav), "audio_s": round(seconds, 1), "wall_s": round(wall, 2),
                "rtf": round(wall / seconds, 4), "peak_rss_mib": round(median(rss[name, wav][-repeats:]), 1),
                "runs": [round(w, 2) for w in walls[f"{name}|{wav}"]],
            })  # fmt: skip
        out[name] = {
            "upstream": cfg.get("features", {}).get("kind", "?"),
            "size_mb": round(sum(p.stat().st_size for p in bundle.iterdir() if p.is_file()) / 1e6, 1),
            "files": rows,
        }
    return out


def format_table(result: dict[str, Any]) -> str:
    """A markdown table: one row per bundle and file."""
    lines = ["| model | upstream | bundle MB | audio s | wall s | RTF | peak RSS MiB |", "|---|---|---:|---:|---:|---:|---:|"]
    for name, row in result.items():
        for f in row["files"]:
            lines.append(f"| {name} | {row['upstream']} | {row['size_mb']} | {f['audio_s']} | {f['wall_s']} | "
                         f"{f['rtf']} | {f['peak_rss_mib']} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", action="append", required=True, metavar="NAME=DIR", help="a bundle to measure")
    ap.add_argument("--audio", type=Path, required=True, help="a long file (RTF and memory)")
    ap.add_argument("--short", type=Path, help="a short file (cold start)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, help="write the JSON here too")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bundles = {}
    for item in args.bundle:
        name, sep, path = item.partition("=")
        if not sep or not (Path(path) / "config.yaml").is_file():
            ap.error(f"--bundle {item!r}: expected NAME=DIR with DIR a bundle (config.yaml inside)")
        bundles[name] = Path(path)
    files = [f for f in (args.short, args.audio) if f is not None]
    for f in files:
        if not f.is_file():
            ap.error(f"{f}: no such file")
    result = {"machine": machine_info(), "family": bench_family(bundles, files, args.repeats)}
    print(format_table(result["family"]))
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
