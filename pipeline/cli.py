"""The ``seqrec`` command: transcribe audio and label video clips with a model bundle.

Heavy imports (torch, torchaudio, cv2) happen inside the subcommands, so ``seqrec --help``
answers at once. ``transcribe`` of a short job on CPU runs the torch-free lite engine
(:mod:`pipeline.inference.lite`), so it never pays torch's start-up time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("seqrec")

EXIT_OK, EXIT_FILE_ERRORS, EXIT_USAGE = 0, 1, 2


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
    common.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
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
        "--model", type=Path, metavar="DIR", default=None,
        help="speech bundle directory (default: the English model shipped with seqrec)",
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
        "--decode-silence", action="store_true",
        help="also decode files (of up to 60 s) in which the voice activity detector hears no "
        "speech; by default they get an empty transcript",
    )
    t.add_argument(
        "--engine", choices=("auto", "torch", "lite"), default="auto",
        help="lite: numpy and onnxruntime, no torch start-up cost (CPU, greedy, no LM; needs the "
        "bundle's model.onnx); auto (default): lite "
        "for up to 60 s of audio on CPU with greedy decoding and no --threads, else torch",
    )

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

    exp = sub.add_parser(
        "export",
        help="export a bundle's model to ONNX",
        description="Export a bundle's model as an ONNX graph: a speech model as features + lengths -> "
        "CTC log-probs and output lengths; a video model (backbone and classifier in one graph) as "
        "uint8 frames + lengths -> class logits. Batch and time are dynamic.",
    )
    exp.add_argument("--model", required=True, type=Path, metavar="DIR", help="speech or video bundle directory")
    exp.add_argument("--format", choices=("onnx",), default="onnx", help="export format (default: onnx)")
    exp.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    exp.add_argument("out", type=Path, metavar="OUT", help="the file to write, e.g. model.onnx")
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
    results: Iterable[Any], fmt: str, output_dir: Path | None, render, debug: bool, stems: list[str] | None = None
) -> int:
    """Prints each result (or its error line) and writes per-file outputs; returns the exit code.

    Good results go to stdout (and ``output_dir``); each failed file gets one line
    ``seqrec: error: <path>: <reason>`` on stderr, with its traceback under ``--debug``.
    ``render(row, fmt)`` gives a result's text in a format other than json; ``fmt == "all"``
    writes every format of :data:`TRANSCRIBE_FORMATS` and prints txt. A partial result (a long
    recording that breaks off: text and ``error``) is printed and written, then its error line
    follows and it counts as failed. ``results`` may be a
    generator: each result is printed and written as it comes, so a killed run keeps the
    finished files' outputs. ``stems``: the output name of each result, in order (default:
    from the results' paths).
    """
    from pipeline.io_utils import atomic_write_text, remove_stale_temps

    if output_dir is not None and output_dir.is_dir():
        remove_stale_temps(output_dir / "x", whole_dir=True)  # left by a killed earlier run
    used: set[str] = set()
    failed = total = 0
    formats = TRANSCRIBE_FORMATS if fmt == "all" else (fmt,)

    def text_of(row: dict[str, Any], f: str) -> str:
        return json.dumps(row, ensure_ascii=False) if f == "json" else render(row, f).rstrip("\n")

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
        print(f"seqrec: error: {message}", file=sys.stderr, flush=True)
        exc = getattr(res, "exception", None)
        if debug and exc is not None:
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    if failed:
        print(f"seqrec: {failed} of {total} file(s) failed", file=sys.stderr)
    return EXIT_FILE_ERRORS if failed else EXIT_OK


#: What ``seqrec transcribe --format all`` writes for each file.
TRANSCRIBE_FORMATS = ("txt", "json", "srt", "vtt", "tsv")


def _render_transcription(row: dict[str, Any], fmt: str) -> str:
    if fmt == "txt":
        return f"{row['path']}\t{row['text']}"
    from pipeline.inference.subtitles import render

    return render(row, fmt)


def _quiet_native_logs(debug: bool) -> None:
    """Keeps OpenCV's and FFmpeg's own messages (printed by native code, e.g. "moov atom not
    found" for a broken mp4) off the terminal unless ``--debug``: each bad file already gets
    its one ``seqrec: error:`` line."""
    import cv2

    if not debug:
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read at first open
    with contextlib.suppress(AttributeError):
        level = cv2.utils.logging.LOG_LEVEL_DEBUG if debug else cv2.utils.logging.LOG_LEVEL_ERROR
        cv2.utils.logging.setLogLevel(level)


def _pick_engine(args: argparse.Namespace) -> str:
    """``lite`` or ``torch`` for a transcribe run (``--engine auto`` decides from the job).

    auto takes the torch-free engine for a short CPU greedy job: ``--device cpu``, no
    ``--beam-size`` above 1, no ``--threads``, and at most ``LITE_MAX_AUDIO_S`` seconds of audio
    in total by the files' headers (any unreadable header means torch, which then reports it).
    A bundle with a word LM (unless ``--lm none``) is the lite engine's to refuse.
    """
    if args.engine != "auto":
        return args.engine
    if args.device.lower() != "cpu" or args.beam_size not in (None, 1) or args.threads is not None:
        return "torch"
    from pipeline.inference.lite import LITE_MAX_AUDIO_S, total_audio_seconds

    total = total_audio_seconds(args.paths)
    log.debug("engine auto: %s s of audio by the headers", "unknown" if total is None else f"{total:.1f}")
    return "lite" if total is not None and total <= LITE_MAX_AUDIO_S else "torch"


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
    if "-" not in args.paths:
        return _transcribe_files(args, None)
    with tempfile.TemporaryDirectory(prefix="seqrec-stdin-") as tmp:
        stdin_file = str(_read_stdin(Path(tmp), raw=args.raw))
        args.paths = [stdin_file if p == "-" else p for p in args.paths]
        return _transcribe_files(args, stdin_file)


def _transcribe_files(args: argparse.Namespace, stdin_file: str | None) -> int:
    """``seqrec transcribe`` once standard input (if any) sits in ``stdin_file``."""
    from pipeline.inference.common import AUDIO_EXTENSIONS, expand_paths
    from pipeline.pretrained import speech_model_dir

    files = [str(p) for p in expand_paths(args.paths, AUDIO_EXTENSIONS)]
    used: set[str] = set()
    stems = [_output_stem("stdin" if f == stdin_file else f, used) for f in files]  # a rerun names alike
    if args.skip_existing:
        formats = TRANSCRIBE_FORMATS if args.format == "all" else (args.format,)
        done = [all((args.output_dir / f"{st}.{f}").is_file() for f in formats) for st in stems]
        files = [f for f, d in zip(files, done, strict=True) if not d]
        stems = [st for st, d in zip(stems, done, strict=True) if not d]
        if sum(done):
            print(f"seqrec: skipped {sum(done)} file(s) with outputs in {args.output_dir}", file=sys.stderr)
        if not files:
            return EXIT_OK
    args.paths = files
    args.model = speech_model_dir(args.model)
    engine = _pick_engine(args)
    transcriber: Any = None
    if engine == "lite":
        from pipeline.inference.lite import LiteBundleError, LiteTranscriber

        if args.device.lower() != "cpu" or args.beam_size not in (None, 1):
            raise ValueError("--engine lite runs on --device cpu with --beam-size 1 only")
        try:
            transcriber = LiteTranscriber.from_pretrained(args.model, lm=args.lm)
        except LiteBundleError as exc:
            if args.engine == "lite":
                raise
            log.debug("engine auto: lite cannot use the bundle (%s); using torch", exc)
    if transcriber is None:
        from pipeline.inference.transcriber import Transcriber

        engine = "torch"
        transcriber = Transcriber.from_pretrained(
            args.model, device=args.device, beam_size=args.beam_size, lm=args.lm
        )
    log.debug("engine: %s", engine)
    transcribe = getattr(transcriber, "transcribe_iter", transcriber.transcribe)  # lite: short jobs, a list

    def results() -> Iterator[Any]:
        for res in transcribe(files, skip_silence=not args.decode_silence):
            if res.path == stdin_file:
                res.path = "-"
                if res.error:
                    res.error = res.error.replace(stdin_file, "standard input")
            yield res

    return _emit(results(), args.format, args.output_dir, _render_transcription, args.debug, stems=stems)


def _read_stdin(tmp: Path, *, raw: bool) -> Path:
    """Standard input into a file: as it is (any format soundfile or ffmpeg reads), or with
    ``raw`` as 16 kHz mono s16le PCM wrapped in a WAV header."""
    import shutil

    source = sys.stdin.buffer
    if not raw:
        path = tmp / "stdin"
        with open(path, "wb") as fh:
            shutil.copyfileobj(source, fh, STDIN_BLOCK_BYTES)  # a block at a time: any length
        return path
    import numpy as np
    import soundfile as sf

    path, total, odd = tmp / "stdin.wav", 0, b""
    with sf.SoundFile(path, "w", RAW_SAMPLE_RATE, 1, "PCM_16", format="WAV") as out:
        while data := source.read(STDIN_BLOCK_BYTES):
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
    from pipeline.inference.labeler import ClipLabeler

    if args.stride is not None and args.window is None:
        raise ValueError("--stride needs --window")
    _quiet_native_logs(args.debug)
    from data_prep.video_io import VideoLimits

    given = {"max_duration_s": args.max_duration, "max_frames": args.max_frames, "max_pixels": args.max_pixels}
    limits = VideoLimits(**{k: v for k, v in given.items() if v is not None})  # the rest: its defaults
    labeler = ClipLabeler.from_pretrained(args.model, device=args.device)
    results = labeler.label_iter(args.paths, top_k=args.top_k, window=args.window, stride=args.stride, limits=limits)

    def render(r: dict[str, Any], fmt: str) -> str:
        best = " ".join(f"{x['label']}:{x['score']:.3f}" for x in r["labels"])
        lines = [f"{r['path']}\t{best}"]
        for seg in r.get("segments", []):
            top = seg["labels"][0]
            lines.append(f"  {seg['start']:.2f}-{seg['end']:.2f}s\t{top['label']}:{top['score']:.3f}")
        return "\n".join(lines)

    return _emit(results, args.format, args.output_dir, render, args.debug)


def _export(args: argparse.Namespace) -> int:
    from pipeline.inference.onnx_export import export_bundle

    out, kind = export_bundle(args.model, args.out)
    print(f"{out}\t{kind}\t{out.stat().st_size} bytes")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the exit code (0 ok, 1 some files failed, 2 usage/model error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="seqrec: %(levelname)s: %(message)s",
    )
    if getattr(args, "threads", None) and getattr(args, "engine", None) != "lite":  # lite: see _transcribe
        import torch

        torch.set_num_threads(args.threads)
    handlers = {"transcribe": _transcribe, "label": _label, "export": _export}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("seqrec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`seqrec ... | head`): stop quietly, as cat does
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail
        return EXIT_OK
    except Exception as exc:
        if args.debug:
            raise
        from pipeline.errors import one_line

        print(f"seqrec: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
