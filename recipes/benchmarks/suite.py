"""The benchmark suite's command line: runs every benchmark, writes results.json and results.md.

``recipes/benchmarks/run.py`` is a thin entry over :func:`main`. One benchmark that cannot run
(no bundle yet, pocketsphinx missing, a failure) is recorded under ``skipped`` with the reason;
the others still run and the files are still written.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import pstats
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.decoding.hotwords import DEFAULT_WEIGHT
from pipeline.errors import one_line
from pipeline.inference.common import usable_cores
from recipes.benchmarks import hotwords as hot
from recipes.benchmarks.report import build_results, render_markdown, write_results
from recipes.benchmarks.timing import BenchmarkError, machine_info, today

log = logging.getLogger(__name__)

BENCHMARKS = ("features", "upstream", "train", "step", "transcribe", "engines", "coldstart", "label", "memory",
              "long_wer", "hotwords")
#: Halves of a benchmark that ``--only`` can also name alone: part -> the benchmark it belongs to.
PARTS = {"memory_transcribe": "memory", "memory_label": "memory"}


@dataclass(frozen=True)
class SuiteOptions:
    """What to measure, on what, how often."""

    speech_exp: Path = Path("exp/speech_ctc")
    video_exp: Path = Path("exp/video_activity")
    out_dir: Path = Path("exp/benchmarks")
    repeats: int = 5
    quick: bool = False
    only: tuple[str, ...] = BENCHMARKS
    threads: int = 0  # 0: the usable cores
    gpu: bool = True
    profile: bool = False  # write a cProfile summary of each benchmark to OUT/profiles/
    coldstart_bundle: Path | None = None  # the bundle of the cold-start benchmark (default: the shipped model)
    memory_minutes: tuple[float, ...] | None = None  # the memory curves' lengths (None: speech.MEMORY_MINUTES)

    # Subset sizes: (full, quick).
    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    @property
    def tmp(self) -> Path:
        return self.out_dir / "tmp"

    def wants(self, part: str) -> bool:
        """Whether ``part`` (a benchmark, or a part in :data:`PARTS`) is selected."""
        return part in self.only or PARTS.get(part) in self.only

    def curve_minutes(self) -> tuple[float, ...]:
        """Lengths, in minutes, of the files of both memory curves (transcription, labelling)."""
        if self.memory_minutes:
            return self.memory_minutes
        # lazy: the speech benchmarks pull in soundfile and jiwer; the suite's --help stays fast
        from recipes.benchmarks.speech import MEMORY_MINUTES

        return MEMORY_MINUTES[1 if self.quick else 0]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recipes/benchmarks/run.py",
        description="seqrec benchmark suite: feature extraction, training loop, transcription "
        "(against pocketsphinx), cold start, video labelling, peak memory and the WER of a long file. Writes "
        "OUT/results.json and OUT/results.md.",
    )
    parser.add_argument("--speech-exp", type=Path, default=SuiteOptions.speech_exp, metavar="DIR",
                        help="finished speech_ctc experiment (default: %(default)s)")
    parser.add_argument("--video-exp", type=Path, default=SuiteOptions.video_exp, metavar="DIR",
                        help="finished video_activity experiment (default: %(default)s)")
    parser.add_argument("--out-dir", type=Path, default=SuiteOptions.out_dir, metavar="DIR",
                        help="where results go (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=None, metavar="N",
                        help="measured runs per figure, after one warm-up (default: 5, or 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="small subsets, so the suite takes a few minutes")
    parser.add_argument("--only", nargs="+", choices=(*BENCHMARKS, *PARTS), metavar="NAME",
                        help=f"run only these benchmarks ({', '.join(BENCHMARKS)}; or one half of memory: "
                        f"{', '.join(PARTS)})")
    parser.add_argument("--memory-minutes", nargs="+", type=float, default=None, metavar="M",
                        help="lengths of the files of the memory curves, minutes, shortest first "
                        "(default: 1 10 60, or 1 10 with --quick)")
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="torch CPU threads for inference benchmarks (default: the usable cores)")
    parser.add_argument("--no-gpu", action="store_true", help="skip the GPU figures even when CUDA is available")
    parser.add_argument("--profile", action="store_true",
                        help="also profile each benchmark (cProfile; top functions to OUT/profiles/NAME.txt)")
    parser.add_argument("--coldstart-bundle", type=Path, default=None, metavar="DIR",
                        help="the speech bundle of the cold-start and long-file benchmarks (default: the shipped model)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def options_from_args(args: argparse.Namespace) -> SuiteOptions:
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 5)
    if repeats < 1:
        raise SystemExit("--repeats must be >= 1")
    if args.memory_minutes is not None and any(m <= 0 for m in args.memory_minutes):
        raise SystemExit("--memory-minutes must be > 0")
    return SuiteOptions(
        speech_exp=args.speech_exp, video_exp=args.video_exp, out_dir=args.out_dir, repeats=repeats,
        quick=args.quick, only=tuple(args.only or BENCHMARKS), threads=args.threads, gpu=not args.no_gpu,
        profile=args.profile,
        coldstart_bundle=args.coldstart_bundle,
        memory_minutes=tuple(args.memory_minutes) if args.memory_minutes else None,
    )


class Runner:
    """Runs named steps; a step that fails is recorded in ``skipped`` and the rest go on."""

    def __init__(self, threads: int, profile_dir: Path | None = None) -> None:
        self.threads = threads
        self.profile_dir = profile_dir
        self.skipped: dict[str, str] = {}

    def __call__(self, name: str, fn: Callable[[], dict[str, Any]], into: dict[str, Any]) -> None:
        # lazy: torch only when the benchmark is timed on a GPU
        import torch

        torch.set_num_threads(self.threads)  # a trainer may have changed it
        log.info("benchmark %s ...", name)
        t0 = time.perf_counter()
        try:
            into[name] = fn() if self.profile_dir is None else self._profiled(name, fn)
        except (BenchmarkError, ImportError, FileNotFoundError) as exc:
            self.skipped[name] = one_line(exc)
            log.warning("benchmark %s skipped: %s", name, self.skipped[name])
        except Exception as exc:  # one failing benchmark must not lose the others' figures
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.skipped[name] = f"failed: {type(exc).__name__}: {first}"
            log.error("benchmark %s failed:\n%s", name, traceback.format_exc())
        else:
            log.info("benchmark %s done in %.1f s", name, time.perf_counter() - t0)

    def _profiled(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Runs ``fn`` under cProfile; writes the top functions by own and by total time."""
        out_dir = Path(self.profile_dir or ".")
        prof = cProfile.Profile()
        try:
            return prof.runcall(fn)
        finally:
            text = io.StringIO()
            stats = pstats.Stats(prof, stream=text)
            for key in ("tottime", "cumulative"):
                text.write(f"==== sorted by {key}\n")
                stats.sort_stats(key).print_stats(40)
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / f"{name}.txt").write_text(text.getvalue())


def run_suite(opts: SuiteOptions) -> dict[str, Any]:
    """Runs the selected benchmarks; returns the validated content of ``results.json``."""
    # lazy: the benchmarks pull in torch; the suite's --help stays fast
    import torch

    from recipes.benchmarks import speech, video

    threads = opts.threads or usable_cores()
    torch.set_num_threads(threads)
    date = today()
    machine = machine_info()
    sexp, vexp = speech.SpeechExp(opts.speech_exp), video.VideoExp(opts.video_exp)
    tmp = opts.tmp
    tmp.mkdir(parents=True, exist_ok=True)
    runner = Runner(threads, opts.out_dir / "profiles" if opts.profile else None)
    bench: dict[str, Any] = {}
    has_sphinx, sphinx_why = speech.pocketsphinx_available()
    if not has_sphinx:
        log.warning("%s; the pocketsphinx figures are skipped", sphinx_why)
    only = set(opts.only)
    r = opts.repeats

    def speech_records(limit: int) -> list[dict[str, Any]]:
        sexp.check(bundle=False, manifests=("test",))
        return speech.read_records(sexp.manifest("test"), limit)

    if "features" in only:
        def features() -> dict[str, Any]:
            sexp.check(bundle=False, manifests=("test", "dev"))
            records = speech.read_records(sexp.manifest("test"))
            if not opts.quick:
                records += speech.read_records(sexp.manifest("dev"))
            records = records[: opts.size(len(records), 100)]
            # lazy: data_prep.features pulls in torch; the suite's --help stays fast
            from data_prep.features import FeatureConfig

            _, workers = speech.recipe_features(sexp)
            # log-mel against librosa's log-mel: like for like, whatever the recipe's front end
            return speech.bench_features(records, FeatureConfig(), tmp / "features", r, num_workers=workers)

        runner("features", features, bench)

    if "upstream" in only:
        def upstream_stage() -> dict[str, Any]:
            # lazy: the upstream benchmark pulls in torch; the suite's --help stays fast
            from recipes.benchmarks.upstream import bench_upstream

            return bench_upstream(speech_records(opts.size(60, 12)), r, threads)

        runner("upstream", upstream_stage, bench)

    if "train" in only:
        runner("train_speech", lambda: speech.bench_train_speech(
            sexp, tmp, r, max_utts=opts.size(300, 96)), bench)
        runner("train_video", lambda: video.bench_train_video(
            vexp, tmp, r, max_clips=opts.size(100_000, 300)), bench)

    if "step" in only:
        runner("step_speech", lambda: speech.bench_step_speech(sexp, r, steps=opts.size(10, 3)), bench)

    if "transcribe" in only:
        def transcribe() -> dict[str, Any]:
            sexp.check(manifests=("test",))
            records = speech_records(opts.size(24, 8))  # pocketsphinx runs at RTF ~0.3: keep it short
            return speech.bench_transcribe(sexp.bundle, records, r, with_sphinx=has_sphinx)

        runner("transcribe", transcribe, bench)
        if not has_sphinx:
            runner.skipped["pocketsphinx"] = sphinx_why

    if "engines" in only:
        def engines() -> dict[str, Any]:
            sexp.check(manifests=("test", "train"))
            test = speech.read_records(sexp.manifest("test"), opts.size(0, 60))
            return speech.bench_engines(sexp.bundle, test, speech.read_records(sexp.manifest("train")))

        if has_sphinx:
            runner("engines", engines, bench)
        else:
            runner.skipped["engines"] = sphinx_why

    if "coldstart" in only:
        def coldstart() -> dict[str, Any]:
            sexp.check(bundle=False, manifests=("test",))  # a test file; the model is the shipped one
            # A short file of typical length: the test utterance nearest 5 s, through the model a
            # user gets by default (the shipped one, with its word LM).
            rec = min(speech_records(0), key=lambda x: abs(float(x["duration"]) - 5.0))
            return speech.bench_coldstart(opts.coldstart_bundle, Path(rec["audio_filepath"]), max(r, 5),
                                          with_sphinx=has_sphinx)  # fmt: skip

        runner("coldstart", coldstart, bench)

    if "label" in only:
        def label() -> dict[str, Any]:
            vexp.check(manifests=("test",))
            return video.bench_label(vexp.bundle, video.clip_paths(vexp, "test", opts.size(0, 40)), r)

        runner("label", label, bench)

    minutes = opts.curve_minutes()
    if opts.wants("memory_transcribe"):
        def memory_transcribe() -> dict[str, Any]:
            sexp.check(bundle=False, manifests=("test",))  # test files; the model is the default one
            records = speech_records(0)
            wavs = [speech.build_long_wav(records, tmp / f"long_{m:g}min.wav", 60.0 * m) for m in minutes]
            return speech.bench_memory_transcribe(opts.coldstart_bundle, wavs)  # the default model

        runner("memory_transcribe", memory_transcribe, bench)

    if opts.wants("memory_label"):
        def memory_label() -> dict[str, Any]:
            # one video per length, built once from the test clips and reused by later runs
            vexp.check(manifests=("test",))
            clips = video.clip_paths(vexp, "test")
            videos = [video.build_long_video(clips, tmp / f"long_{m:g}min.mp4", 60.0 * m) for m in minutes]
            return video.bench_memory_label(vexp.bundle, videos)

        runner("memory_label", memory_label, bench)

    if "long_wer" in only:
        def long_wer() -> dict[str, Any]:
            # every test utterance (40 with --quick), 0.3 s pauses: the experiment's bundle and the shipped model
            sexp.check(manifests=("test",))
            records = speech_records(opts.size(0, 40))
            bundles = {"experiment": sexp.bundle, "shipped": None}
            return speech.bench_long_wer(bundles, records, tmp)

        runner("long_wer", long_wer, bench)

    if "hotwords" in only:
        def hotwords() -> dict[str, Any]:
            # the shipped model on its own synthesised test set (recipes/benchmarks/hotwords.py),
            # kept in ~/.cache/seqrec/hotwords between runs; --quick measures the default weight only
            return hot.run(weights=(DEFAULT_WEIGHT,) if opts.quick else hot.WEIGHTS, threads=1)

        runner("hotwords", hotwords, bench)

    gpu = None
    if torch.cuda.is_available() and opts.gpu:
        gpu = run_gpu(opts, sexp, vexp, threads, has_sphinx)
    elif torch.cuda.is_available():
        runner.skipped["gpu"] = "--no-gpu"
    settings = {
        "repeats": r, "quick": opts.quick, "only": [b for b in (*BENCHMARKS, *PARTS) if b in only],
        "threads": threads, "memory_minutes": list(minutes),
        "speech_exp": str(opts.speech_exp), "video_exp": str(opts.video_exp),
    }
    return build_results(date=date, machine=machine, settings=settings, benchmarks=bench, gpu=gpu,
                         skipped=runner.skipped)


def run_gpu(opts: SuiteOptions, sexp, vexp, threads: int, has_sphinx: bool) -> dict[str, Any]:
    """The CUDA figures: training loops (the trainer's bf16/fp16 autocast), transcription, labelling."""
    # lazy: the benchmarks pull in torch; the suite's --help stays fast
    import torch

    from recipes.benchmarks import speech, video

    runner = Runner(threads, opts.out_dir / "profiles" / "gpu" if opts.profile else None)
    out: dict[str, Any] = {"name": torch.cuda.get_device_name(0)}
    only, r, tmp = set(opts.only), opts.repeats, opts.tmp / "gpu"
    if "train" in only:
        runner("train_speech", lambda: speech.bench_train_speech(
            sexp, tmp, r, max_utts=opts.size(2000, 200), device="cuda"), out)
        runner("train_video", lambda: video.bench_train_video(
            vexp, tmp, r, max_clips=opts.size(100_000, 300), device="cuda"), out)
    if "transcribe" in only:
        runner("transcribe", lambda: speech.bench_transcribe(
            sexp.bundle, speech.read_records(sexp.manifest("test"), opts.size(0, 32)), r,
            device="cuda", with_sphinx=False), out)
    if "label" in only:
        runner("label", lambda: video.bench_label(
            vexp.bundle, video.clip_paths(vexp, "test", opts.size(0, 40)), r, device="cuda"), out)
    out["skipped"] = runner.skipped
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry: runs the suite, writes the results, prints the table."""
    args = build_parser().parse_args(argv)
    opts = options_from_args(args)
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(), logging.FileHandler(opts.out_dir / "run.log")],
    )

    t0 = time.perf_counter()
    results = run_suite(opts)
    json_path, md_path = write_results(results, opts.out_dir)
    print(render_markdown(results))
    print(f"\nwrote {json_path} and {md_path} in {time.perf_counter() - t0:.0f} s")
    return results
