"""The ``seqrec`` command: transcribe audio and label video clips with a model bundle.

Heavy imports (torch, torchaudio, cv2) happen inside the subcommands, so ``seqrec --help``
answers at once. ``transcribe`` of a short job on CPU runs the torch-free lite engine
(:mod:`pipeline.inference.lite`), so it never pays torch's start-up time.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import InputError, one_line
from pipeline.escaping import EscapingFormatter, escape, json_safe
from pipeline.inference import subtitles
from pipeline.inference.engines import load_transcriber
from pipeline.inference.progress import ProgressBar, wants_bar
from pipeline.inference.transcription import Transcription
from pipeline.io_utils import atomic_write_text, remove_stale_temps
from pipeline.limits import FLAGS, LimitError, Limits, check_beam, current_limits, use_limits

log = logging.getLogger("seqrec")

EXIT_OK, EXIT_FILE_ERRORS, EXIT_USAGE = 0, 1, 2

#: The limits (``pipeline.limits.Limits`` fields) each subcommand has a flag for: those its
#: inputs can run into.
COMMAND_LIMITS = {
    "transcribe": ("max_audio_s", "max_stdin_bytes", "max_beam", "max_lm_bytes", "max_line_bytes",
                   "max_lexicon_words", "max_params"),
    "label": ("max_windows", "max_params"),
    "export": ("max_params",),
}  # fmt: skip


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _add_limit_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """One flag per limit of ``command`` (:data:`COMMAND_LIMITS`), named and described by
    ``pipeline.limits.FLAGS``; a flag left out keeps the limit's default (``dest`` is the field)."""
    group = parser.add_argument_group("limits", "what one run may read (raise a limit for a larger input)")
    defaults = Limits()
    for field in COMMAND_LIMITS[command]:
        flag, what = FLAGS[field]
        default = getattr(defaults, field)
        kind, metavar = (_positive_float, "SEC") if isinstance(default, float) else (_positive_int, "N")
        shown = f"{default:g}" if isinstance(default, float) else f"{default:,}"
        group.add_argument(flag, dest=field, type=kind, metavar=metavar, default=None,
                           help=f"limit on the {what} (default: {shown})".replace("%", "%%"))  # fmt: skip


def _limits_of(args: argparse.Namespace) -> Limits:
    """The run's limits: the defaults, raised (or lowered) by the limit flags given."""
    return Limits().raised(**{f.name: getattr(args, f.name, None) for f in dataclasses.fields(Limits)})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqrec",
        description="Speech transcription and video activity recognition with seqrec model bundles.",
        epilog="Train a bundle with recipes/speech_ctc/run.py or recipes/video_activity/run.py.",
    )
    parser.add_argument("--version", action="version", version="seqrec 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--output-dir", type=Path, metavar="DIR", help="also write one <name>.<format> file per input here"
    )
    common.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    common.add_argument("--threads", type=_positive_int, default=None, help="CPU threads (default: 2 on the torch-free engine where two cores are usable; torch: its own)")
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    common.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="a progress bar on stderr in seconds of media (default: only when stderr is a terminal)",
    )
    common.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")

    t = sub.add_parser(
        "transcribe",
        parents=[common],
        help="transcribe audio files to text with word timestamps",
        description="Transcribe audio files (any sample rate or channel count; wav, flac, ogg, mp3, "
        "and whatever ffmpeg decodes). Directories are searched recursively for audio files.",
    )
    t.add_argument(
        "--format", choices=("txt", "json", "srt", "vtt", "tsv", "all"), default="txt",
        help="txt (default), json, srt/vtt subtitles, tsv (start/end in ms); all: every format, "
        "written to --output-dir (stdout shows txt)",
    )
    t.add_argument(
        "--raw", action="store_true",
        help="with the path '-': standard input is raw 16 kHz mono signed 16-bit little-endian PCM",
    )
    t.add_argument(
        "--skip-existing", action="store_true",
        help="with --output-dir: leave out inputs whose outputs are already there (resume a run)",
    )
    t.add_argument(
        "--model", type=Path, metavar="NAME|DIR", default=None,
        help="a speech bundle directory, or a model shipped with seqrec by name: tiny (the default, "
        "English, on Whisper tiny.en)",
    )
    t.add_argument(
        "--beam-size", type=_positive_int, default=None,
        help="beam width; default: the word LM's tuned width, or greedy (1) without an LM",
    )
    t.add_argument(
        "--lm", default="auto", metavar="auto|none|PATH",
        help="word-level LM: auto (default) uses the bundle's if it has one; none decodes "
        "characters only; PATH: another ARPA (optionally gzipped) or KenLM binary file",
    )
    t.add_argument(
        "--hotwords", type=Path, metavar="FILE", default=None,
        help="words or phrases to favour, one a line with an optional weight ('zarnowski:6'); "
        "words outside the lexicon are added (needs the word LM)",
    )
    t.add_argument(
        "--decode-silence", action="store_true",
        help="also decode files (of up to 60 s) in which the voice activity detector hears no "
        "speech; by default they get an empty transcript",
    )
    t.add_argument(
        "--engine", choices=("auto", "torch", "lite"), default="auto",
        help="lite: numpy and onnxruntime, no torch start-up cost (CPU; needs the bundle's "
        "model.onnx); auto (default): lite on CPU when the bundle has a graph, else torch",
    )
    _add_limit_flags(t, "transcribe")

    lab = sub.add_parser(
        "label",
        parents=[common],
        help="label video clips with activity classes",
        description="Label video clips with the activity classes of a video bundle. With --window, "
        "also label sliding windows over each (long) video.",
    )
    lab.add_argument("--format", choices=("txt", "json"), default="txt", help="output format (default: txt)")
    lab.add_argument("--model", required=True, type=Path, metavar="DIR", help="video bundle directory")
    lab.add_argument("--top-k", type=_positive_int, default=5, help="labels to report per clip (default: 5)")
    lab.add_argument("--window", type=_positive_float, metavar="SEC", help="sliding window length in seconds")
    lab.add_argument("--stride", type=_positive_float, metavar="SEC", help="window stride in seconds (default: window/2)")
    lab.add_argument("--max-duration", type=_positive_float, metavar="SEC",
                     help="refuse a video longer than this (default: 6 hours)")
    lab.add_argument("--max-frames", type=_positive_int, metavar="N",
                     help="refuse a video with more frames (default: 2,000,000)")
    lab.add_argument("--max-pixels", type=_positive_int, metavar="N",
                     help="refuse frames larger than this, width x height (default: 8192 x 8192)")
    _add_limit_flags(lab, "label")

    exp = sub.add_parser(
        "export",
        help="export a bundle's model to ONNX",
        description="Export a bundle's model as an ONNX graph: a speech model as features + lengths -> "
        "CTC log-probs and output lengths; a video model (backbone and classifier in one graph) as "
        "uint8 frames + lengths -> class logits. Batch and time are dynamic.",
    )
    exp.add_argument("--model", required=True, type=Path, metavar="DIR", help="speech or video bundle directory")
    exp.add_argument("--format", choices=("onnx",), default="onnx", help="export format (default: onnx)")
    exp.add_argument("--quantize", choices=("none", "int8"), default="none",
                     help="int8: onnxruntime's dynamic quantisation (weights in int8, about 3.5x smaller)")
    exp.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    exp.add_argument("out", type=Path, metavar="OUT", help="the file to write, e.g. model.onnx")
    _add_limit_flags(exp, "export")
    return parser


def _output_stem(path: str, used: set[str]) -> str:
    """``<stem>``, or a longer unique one (``<name>``, ``<name>.2``, ...) when another input of
    this run had that stem; outputs are ``<stem>.<format>``."""
    p = Path(path)
    candidates = [p.stem, p.name, *(f"{p.name}.{k}" for k in range(2, len(used) + 3))]
    stem = next(c for c in candidates if c not in used)
    used.add(stem)
    return stem


def _emit(
    results: Iterable[Any], fmt: str, output_dir: Path | None, render, debug: bool, stems: list[str] | None = None,
    bar: Any = None,
) -> int:
    """Prints each result (or its error line) and writes per-file outputs; returns the exit code.

    Good results go to stdout (and ``output_dir``); each failed file gets one line
    ``seqrec: error: <path>: <reason>`` on stderr, with its traceback under ``--debug``, the
    path and reason escaped by :func:`pipeline.escaping.escape` (a file name cannot forge a
    line). ``render(row, fmt)`` gives a result's text in a format other than json, escaping
    every path and text field the same way; ``fmt == "all"``
    writes every format of :data:`TRANSCRIBE_FORMATS` and prints txt. A partial result (a long
    recording that breaks off: text and ``error``) is printed and written, then its error line
    follows and it counts as failed. ``results`` may be a
    generator: each result is printed and written as it comes, so a killed run keeps the
    finished files' outputs. ``stems``: the output name of each result, in order (default:
    from the results' paths). ``bar``: the run's :class:`~pipeline.inference.progress.ProgressBar`
    (or None), cleared while a line is printed and counting the files.
    """
    if output_dir is not None and output_dir.is_dir():
        remove_stale_temps(output_dir / "x", whole_dir=True)  # left by a killed earlier run
    used: set[str] = set()
    failed = total = 0
    formats = TRANSCRIBE_FORMATS if fmt == "all" else (fmt,)
    printing = bar.paused if bar is not None else contextlib.nullcontext
    if bar is not None:
        results = bar.count_files(iter(results))

    def text_of(row: dict[str, Any], f: str) -> str:
        if f == "json":  # JSON escapes control characters itself; a lone surrogate is all it keeps
            return json_safe(json.dumps(row, ensure_ascii=False))
        return render(row, f).rstrip("\n")

    for k, res in enumerate(results):
        total += 1
        row = res.to_dict()
        if "error" not in row or "text" in row:  # a result; a partial one has "error" too
            out = output_dir
            try:  # written first: a row on stdout means its files are on disk
                if output_dir is not None:
                    stem = stems[k] if stems is not None else _output_stem(row["path"], used)
                    output_dir.mkdir(parents=True, exist_ok=True)
                    for f in formats:
                        out = output_dir / f"{stem}.{f}"
                        atomic_write_text(out, text_of(row, f) + "\n")
                with printing():
                    print(text_of(row, "txt" if fmt == "all" else fmt), flush=True)
                if "error" not in row:
                    continue
            except OSError as exc:
                if isinstance(exc, BrokenPipeError):
                    raise
                row = {"path": row["path"], "error": f"cannot write {out}: {exc.strerror or exc}"}
                res = None
        failed += 1
        message = row["error"]
        if not message.startswith(row["path"]):
            message = f"{row['path']}: {message}"
        exc = getattr(res, "exception", None)
        with printing():
            print(f"seqrec: error: {escape(message)}", file=sys.stderr, flush=True)
            if debug and exc is not None:
                traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    if bar is not None:
        bar.close()  # before the summary, which goes under it
    if failed:
        print(f"seqrec: {failed} of {total} file(s) failed", file=sys.stderr)
    return EXIT_FILE_ERRORS if failed else EXIT_OK


#: What ``seqrec transcribe --format all`` writes for each file.
TRANSCRIBE_FORMATS = ("txt", "json", "srt", "vtt", "tsv")


def _render_transcription(row: dict[str, Any], fmt: str) -> str:
    """A transcription row as txt (``<path><TAB><text>``), srt, vtt or tsv, every path and text
    escaped (:mod:`pipeline.escaping`), so each file's txt row is one line of two columns."""
    if fmt == "txt":
        return f"{escape(row['path'])}\t{escape(row['text'])}"

    return subtitles.render(row, fmt)


def _quiet_native_logs(debug: bool) -> None:
    """Keeps OpenCV's and FFmpeg's own messages (printed by native code, e.g. "moov atom not
    found" for a broken mp4) off the terminal unless ``--debug``: each bad file already gets
    its one ``seqrec: error:`` line."""
    # lazy: cv2 only for the label command; seqrec --help stays fast
    import cv2

    if not debug:
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read at first open
    with contextlib.suppress(AttributeError):
        level = cv2.utils.logging.LOG_LEVEL_DEBUG if debug else cv2.utils.logging.LOG_LEVEL_ERROR
        cv2.utils.logging.setLogLevel(level)


def _transcribe(args: argparse.Namespace) -> int:
    if args.engine != "torch" and "numpy" not in sys.modules:
        # The lite engine multiplies small matrices, where one BLAS thread is fastest (several
        # times faster than two when another process keeps a core busy). Torch does not use
        # numpy's BLAS, so this is harmless when auto then picks torch.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads or 1))
    if args.paths.count("-") > 1:
        raise ValueError("standard input ('-') can be given once")
    if args.raw and "-" not in args.paths:
        raise ValueError("--raw describes standard input: give the path '-'")
    if args.format == "all" and args.output_dir is None:
        raise ValueError("--format all writes files: it needs --output-dir")
    if args.skip_existing and args.output_dir is None:
        raise ValueError("--skip-existing needs --output-dir")
    if args.beam_size is not None:  # before any bundle or file is read
        check_beam(args.beam_size, "--beam-size", "beam width")
    if args.hotwords is not None:  # read (and its lines checked) before any bundle or audio
        # lazy: hotwords pull in numpy; seqrec --help must not load it
        from pipeline.decoding.hotwords import read_hotwords

        args.hotwords = read_hotwords(args.hotwords)
    if "-" not in args.paths:
        return _transcribe_files(args, None)
    with tempfile.TemporaryDirectory(prefix="seqrec-stdin-") as tmp:
        try:
            stdin_file = str(_read_stdin(Path(tmp), raw=args.raw))
        except LimitError as exc:  # '-' fails alone: the other inputs go on
            for partial in Path(tmp).iterdir():
                partial.unlink()  # the disk space goes back now, not at the end of the run
            return _transcribe_files(args, None, stdin_error=exc)
        args.paths = [stdin_file if p == "-" else p for p in args.paths]
        return _transcribe_files(args, stdin_file)


def _transcribe_files(args: argparse.Namespace, stdin_file: str | None, stdin_error: Exception | None = None) -> int:
    """``seqrec transcribe`` once standard input (if any) sits in ``stdin_file``; or, with
    ``stdin_error``, once it has failed (the path ``-`` then gets that error as its result)."""
    # lazy: pipeline.inference.common pulls in numpy; seqrec --help must not load it
    from pipeline.inference.common import TRANSCRIBE_EXTENSIONS, expand_paths

    files = [str(p) for p in expand_paths(args.paths, TRANSCRIBE_EXTENSIONS)]
    failed_stdin = "-" if stdin_error is not None else None
    used: set[str] = set()
    stems = [_output_stem("stdin" if f in (stdin_file, failed_stdin) else f, used) for f in files]  # a rerun names alike
    if args.skip_existing:
        formats = TRANSCRIBE_FORMATS if args.format == "all" else (args.format,)
        done = [all((args.output_dir / f"{st}.{f}").is_file() for f in formats) for st in stems]
        files = [f for f, d in zip(files, done, strict=True) if not d]
        stems = [st for st, d in zip(stems, done, strict=True) if not d]
        if sum(done):
            print(f"seqrec: skipped {sum(done)} file(s) with outputs in {escape(str(args.output_dir))}", file=sys.stderr)
        if not files:
            return EXIT_OK
    todo = [f for f in files if f != failed_stdin]
    transcriber = None
    if todo:
        transcriber = load_transcriber(args.model, engine=args.engine, lm=args.lm, beam_size=args.beam_size,
                                       device=args.device, threads=args.threads, hotwords=args.hotwords)  # fmt: skip
        log.debug("engine: %s", transcriber.engine)

    def results(bar: Any) -> Iterator[Any]:
        done = iter(transcriber.transcribe_iter(todo, skip_silence=not args.decode_silence, progress=bar)) if todo else iter(())
        for path in files:
            if path == failed_stdin:
                yield Transcription(path="-", error=one_line(stdin_error), exception=stdin_error)
                continue
            res = next(done)
            if res.path == stdin_file:
                res.path = "-"
                if res.error:
                    res.error = res.error.replace(stdin_file, "standard input")
            yield res

    with _progress_bar(args, "transcribe", len(files)) as bar:
        return _emit(results(bar), args.format, args.output_dir, _render_transcription, args.debug, stems=stems, bar=bar)


def _read_stdin(tmp: Path, *, raw: bool) -> Path:
    """Standard input into a file: as it is (any format soundfile or ffmpeg reads), or with
    ``raw`` as 16 kHz mono s16le PCM wrapped in a WAV header.

    Raises:
        LimitError: standard input holds more than ``max_stdin_bytes`` (found as soon as one
            byte more arrives; the copy so far stays in ``tmp``).
    """
    limit = current_limits().max_stdin_bytes
    source = sys.stdin.buffer

    def blocks() -> Iterator[bytes]:
        total = 0
        while data := source.read(min(STDIN_BLOCK_BYTES, limit - total + 1)):
            total += len(data)
            if total > limit:
                raise LimitError("-", "standard input holds more bytes than allowed", "max_stdin_bytes", limit)
            yield data

    if not raw:
        path = tmp / "stdin"
        with open(path, "wb") as fh:
            for data in blocks():  # a block at a time: any length up to the limit
                fh.write(data)
        return path
    # lazy: numpy and soundfile only for raw standard input
    import numpy as np
    import soundfile as sf

    path, total, odd = tmp / "stdin.wav", 0, b""
    with sf.SoundFile(path, "w", RAW_SAMPLE_RATE, 1, "PCM_16", format="WAV") as out:
        for data in blocks():
            total += len(data)
            data, odd = odd + data, b""
            if len(data) % 2:
                data, odd = data[:-1], data[-1:]
            out.write(np.frombuffer(data, dtype="<i2"))
    if total % 2:
        raise ValueError(f"standard input: raw s16le PCM needs an even number of bytes, got {total}")
    return path


#: Sample rate of ``seqrec transcribe --raw -`` input.
RAW_SAMPLE_RATE = 16000
#: Bytes of standard input copied per read (its copy on disk is then read like any file).
STDIN_BLOCK_BYTES = 1 << 20

def _label(args: argparse.Namespace) -> int:
    # lazy: the labeler pulls in torch; only seqrec label needs it
    from pipeline.inference.labeler import ClipLabeler

    if args.stride is not None and args.window is None:
        raise ValueError("--stride needs --window")
    _quiet_native_logs(args.debug)
    # lazy: data_prep.video_io pulls in cv2; only seqrec label needs it
    from data_prep.video_io import VideoLimits

    given = {"max_duration_s": args.max_duration, "max_frames": args.max_frames, "max_pixels": args.max_pixels}
    limits = VideoLimits(**{k: v for k, v in given.items() if v is not None})  # the rest: its defaults
    # lazy: pipeline.inference.common pulls in numpy; seqrec --help must not load it
    from pipeline.inference.common import VIDEO_EXTENSIONS, expand_paths

    labeler = ClipLabeler.from_pretrained(args.model, device=args.device)
    files = expand_paths(args.paths, VIDEO_EXTENSIONS)

    def render(r: dict[str, Any], fmt: str) -> str:
        # Paths and the bundle's class names escaped: one row per file, one line per segment.
        best = " ".join(f"{escape(x['label'])}:{x['score']:.3f}" for x in r["labels"])
        lines = [f"{escape(r['path'])}\t{best}"]
        for seg in r.get("segments", []):
            top = seg["labels"][0]
            lines.append(f"  {seg['start']:.2f}-{seg['end']:.2f}s\t{escape(top['label'])}:{top['score']:.3f}")
        return "\n".join(lines)

    with _progress_bar(args, "label", len(files)) as bar:
        results = labeler.label_iter(files, top_k=args.top_k, window=args.window, stride=args.stride, limits=limits,
                                     progress=bar)  # fmt: skip
        return _emit(results, args.format, args.output_dir, render, args.debug, bar=bar)


@contextlib.contextmanager
def _progress_bar(args: argparse.Namespace, desc: str, files: int) -> Iterator[Any]:
    """The run's progress bar (:class:`pipeline.inference.progress.ProgressBar`) on stderr, or
    None: with ``--progress``, or by default when stderr is a terminal (never in a pipe, a log
    file or CI). While it is drawn, log lines are written above it."""
    if not wants_bar(args.progress):
        yield None
        return
    # lazy: tqdm only when a bar is drawn
    from tqdm.contrib.logging import logging_redirect_tqdm

    with ProgressBar(desc, files=files) as bar, logging_redirect_tqdm():
        yield bar


def _export(args: argparse.Namespace) -> int:
    """``seqrec export``: a bundle error exits 2 (through :func:`main`); OUT that cannot be
    written is one line ``seqrec: error: <OUT>: cannot write: <reason>`` and exit 1."""
    # lazy: the exporter pulls in torch; only seqrec export needs it
    from pipeline.inference.onnx_export import ExportWriteError, export_bundle

    try:
        out, kind = export_bundle(args.model, args.out, quantize=args.quantize)
    except ExportWriteError as exc:
        print(f"seqrec: error: {escape(str(exc))}", file=sys.stderr)
        return EXIT_FILE_ERRORS
    print(f"{escape(str(out))}\t{kind}\t{out.stat().st_size} bytes")
    return EXIT_OK


class _Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: raised in the main thread, as SIGINT raises KeyboardInterrupt,
    so that every ``with`` and ``finally`` on the way out removes its temporaries (the copy of
    standard input, the lexicon the word-LM loader writes, an output being written). A
    ``BaseException``: the per-file ``except Exception`` handlers let it through."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


#: Signals that end a run the way Ctrl-C does (SIGINT is Python's KeyboardInterrupt already).
END_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def _signals_end_the_run() -> Iterator[None]:
    """Inside the block, :data:`END_SIGNALS` raise :class:`_Terminated` (main thread only; a
    signal handler can be set nowhere else). The first one only: a second one during the
    cleanup it starts is ignored, so the cleanup finishes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        for s in END_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        raise _Terminated(signum)

    previous = {s: signal.signal(s, handler) for s in END_SIGNALS}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)


def _check_output_dir(path: Path) -> None:
    """``--output-dir`` before any work: a directory that can be written, or a path to one that
    does not exist yet whose nearest existing parent is such a directory (the first output makes
    it).

    Raises:
        InputError: a file (or a path below one) or a directory that cannot be written.
    """
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == path else f" ({existing} is a file)"
        raise InputError(path, f"--output-dir is not a directory{where}")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" ({existing} cannot be written)"
        raise InputError(path, f"--output-dir is not writable{where}")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the exit code (0 ok, 1 some files failed, 2 usage/model error;
    130, 143, 129 after SIGINT, SIGTERM, SIGHUP, temporaries removed)."""
    # onnxruntime (1.29 and later) writes a telemetry database and a device id under
    # ~/.cache/Microsoft/DeveloperTools/.onnxruntime when it is imported, unless this is set first.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    parser = build_parser()
    args = parser.parse_args(argv)

    root = logging.getLogger()
    if not root.handlers:  # (a host program, or pytest, may have set up logging already)
        handler = logging.StreamHandler()
        handler.setFormatter(EscapingFormatter("seqrec: %(levelname)s: %(message)s"))  # no forged lines
        root.addHandler(handler)
        root.setLevel(logging.DEBUG if args.debug else logging.WARNING)
    if getattr(args, "threads", None) and args.command != "transcribe":  # transcribe: per engine
        # lazy: torch only to set its threads when the torch engine may run
        import torch

        torch.set_num_threads(args.threads)
    handlers = {"transcribe": _transcribe, "label": _label, "export": _export}
    try:
        with _signals_end_the_run(), use_limits(_limits_of(args)):
            if getattr(args, "output_dir", None) is not None:
                _check_output_dir(args.output_dir)
            return handlers[args.command](args)
    except KeyboardInterrupt:
        print("seqrec: interrupted", file=sys.stderr)
        return 130
    except _Terminated as exc:
        print(f"seqrec: terminated ({exc})", file=sys.stderr)
        return 128 + exc.signum
    except BrokenPipeError:  # the reader went away (`seqrec ... | head`): stop quietly, as cat does
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail
        return EXIT_OK
    except Exception as exc:
        if args.debug:
            raise

        print(f"seqrec: error: {escape(one_line(exc))}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
