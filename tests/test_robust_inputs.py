"""Hostile inputs and the run's limits, end to end (issue #33): FIFOs and devices given as inputs,
windows that would never end, media whose header understates its length, an endless standard
input, signals in the middle of a temporary copy, and a bad ``--output-dir``.

Each case ends quickly with one ``seqrec: error: <path>: <reason>`` line (or a usage error, exit
2), leaves no temporary behind, and lets the other files of the run go on. The limits come from
:mod:`pipeline.limits`; the CLI has one flag per limit, generated from ``limits.FLAGS``.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from bundles import run_cli

from pipeline.cli import main as cli_main
from pipeline.limits import FLAGS, Limits, current_limits, use_limits

REPO = Path(__file__).resolve().parents[1]
SR = 16000
HAS_FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None
needs_ffmpeg = pytest.mark.skipif(not HAS_FFMPEG, reason="needs the ffmpeg command")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="FIFOs and POSIX signals")
LABELS = ["wave", "walk", "jump"]


# --------------------------------------------------------------------------- bundles


@pytest.fixture(scope="module")
def speech_bundle(tmp_path_factory) -> Path:
    """A tiny untrained speech bundle with its ONNX graph: both engines can run it."""
    from bundles import tiny_speech_bundle

    return tiny_speech_bundle(tmp_path_factory.mktemp("speech") / "bundle", graph=True)


@pytest.fixture(scope="module")
def video_bundle(tmp_path_factory) -> Path:
    """A tiny untrained video bundle (4 frames of 32 x 32 per clip)."""
    from data_prep.frame_embed import BackboneConfig, build_backbone
    from pipeline.bundle import save_bundle
    from pipeline.config import to_dict
    from pipeline.models.classifier import ClassifierConfig, SequenceClassifier
    from pipeline.models.encoder import EncoderConfig

    torch.manual_seed(0)
    bb = BackboneConfig(name="mobilenet_v3_small", frame_size=32, short_side=32, num_segments=4)
    backbone, dim = build_backbone(bb.name, "none")
    cfg = ClassifierConfig(input_dim=dim, num_classes=len(LABELS), encoder=EncoderConfig(cell="lstm", hidden_size=16, num_layers=1))
    config = {
        "kind": "video_classifier", "model": to_dict(cfg), "backbone": {**to_dict(bb), "weights": "backbone.safetensors"},
        "labels": LABELS, "weights": "model.safetensors", "backbone_weights": "backbone.safetensors", "metrics": {},
    }  # fmt: skip
    out = tmp_path_factory.mktemp("video") / "bundle"
    weights = {"model.safetensors": SequenceClassifier(cfg).state_dict(), "backbone.safetensors": backbone.state_dict()}
    return save_bundle(out, config, weights)


# --------------------------------------------------------------------------- helpers


def _wav(path: Path, seconds: float = 0.5, sr: int = SR) -> Path:
    t = np.arange(int(round(seconds * sr))) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), sr, subtype="PCM_16")
    return path


def _video(path: Path, frames: int, fps: float = 10.0) -> Path:
    from data_prep.video_io import write_video

    return write_video(path, [np.full((48, 64, 3), (20 * i) % 256, np.uint8) for i in range(frames)], fps, fourcc="mp4v")


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=120)


def lying_mkv(path: Path, seconds: float, claimed: float) -> Path:
    """A Matroska file of ``seconds`` of a tone whose header (Segment Info Duration) claims
    ``claimed`` seconds; every tool that reads the header believes the claim."""
    honest = path.with_name(f"honest-{path.name}")
    _ffmpeg("-f", "lavfi", "-i", f"sine=f=440:d={seconds}", "-ar", str(SR), "-c:a", "pcm_s16le",
            "-write_crc32", "0", str(honest))  # fmt: skip
    data = bytearray(honest.read_bytes())
    at = data.find(b"\x44\x89")  # the Duration element: ID, size byte, a big-endian float in ms
    width = data[at + 2] & 0x0F
    assert data[at + 2] in (0x84, 0x88), data[at : at + 12].hex()
    data[at + 3 : at + 3 + width] = struct.pack(">d" if width == 8 else ">f", claimed * 1000.0)
    path.write_bytes(bytes(data))
    honest.unlink()
    return path




def _stdin(monkeypatch, source) -> None:
    monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": source})())


class Endless(io.RawIOBase):
    """``cat /dev/zero``: zeros without end; counts what was read."""

    def __init__(self) -> None:
        self.given = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = 1 << 16 if n is None or n < 0 else n
        self.given += n
        return bytes(n)


def _child_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


# --------------------------------------------------------------------------- A. flags of the limits


SUBCOMMAND_LIMITS = {
    "transcribe": {"max_lm_bytes", "max_line_bytes", "max_lexicon_words", "max_params", "max_beam",
                   "max_stdin_bytes", "max_audio_s"},
    "label": {"max_params", "max_windows"},
    "export": {"max_params"},
}  # fmt: skip


def test_every_limit_has_its_flag_where_it_matters(monkeypatch, tmp_path: Path) -> None:
    """The flags come from ``limits.FLAGS``; each subcommand has those of the limits it meets,
    and the whole command runs with the values given (the defaults for the rest)."""
    from pipeline import cli

    assert set().union(*SUBCOMMAND_LIMITS.values()) == set(FLAGS)
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for command, fields in SUBCOMMAND_LIMITS.items():
        options = {s for a in subparsers[command]._actions for s in a.option_strings}
        for field, (flag, _) in FLAGS.items():
            assert (flag in options) == (field in fields), (command, flag)
        help_text = subparsers[command].format_help()
        assert all(FLAGS[f][0] in help_text for f in fields)
    seen = {}
    for command in SUBCOMMAND_LIMITS:
        monkeypatch.setattr(cli, f"_{command}", lambda args, c=command: seen.setdefault(c, current_limits()) and 0)
    wav = str(_wav(tmp_path / "a.wav"))
    assert cli_main(["transcribe", "--max-audio-duration", "7.5", "--max-stdin-bytes", "1000", "--max-beam", "8", wav]) == 0
    assert cli_main(["label", "--model", str(tmp_path), "--max-windows", "12", "--max-params", "99", wav]) == 0
    assert cli_main(["export", "--model", str(tmp_path), "--max-params", "1234", str(tmp_path / "m.onnx")]) == 0
    assert seen["transcribe"] == Limits(max_audio_s=7.5, max_stdin_bytes=1000, max_beam=8)
    assert seen["label"] == Limits(max_windows=12, max_params=99)
    assert seen["export"] == Limits(max_params=1234)
    assert current_limits() == Limits()  # only for the command


def test_limit_flags_refuse_nonsense(capsys) -> None:
    for argv in (["transcribe", "--max-beam", "0", "x.wav"], ["transcribe", "--max-audio-duration", "-1", "x.wav"],
                 ["label", "--model", "m", "--max-windows", "lots", "x.mp4"]):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            cli_main(argv)
        assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_beam_size_above_max_beam_is_refused_before_anything_loads(capsys, tmp_path: Path) -> None:
    missing_model = str(tmp_path / "no_bundle")  # the beam check comes first: no bundle is read
    wav = str(_wav(tmp_path / "a.wav"))
    code, rows, errors, err = run_cli(capsys, "transcribe", "--model", missing_model, "--beam-size", "5000", wav)
    assert code == 2 and rows == [] and len(errors) == 1 and "Traceback" not in err
    assert "--beam-size" in errors[0] and "1,024" in errors[0] and "--max-beam" in errors[0]
    code, _, errors, _ = run_cli(capsys, "transcribe", "--model", missing_model, "--beam-size", "5000", "--max-beam", "8192", wav)
    assert code == 2 and "--max-beam" not in errors[0]  # past the beam check: the missing bundle


# --------------------------------------------------------------------------- 2. FIFOs and devices


class FifoWatchdog:
    """Unblocks a reader stuck on a FIFO after ``after`` seconds (so a regression fails instead of
    hanging); ``fired`` says whether it had to."""

    def __init__(self, path: Path, after: float = 8.0) -> None:
        self.path, self.after, self.fired = path, after, False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.after
        while not self.stop.wait(0.05):
            if time.monotonic() < deadline:
                continue
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)  # only succeeds while a reader waits
            except OSError:
                continue
            self.fired = True
            os.close(fd)

    def __enter__(self) -> FifoWatchdog:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


@linux_only
@pytest.mark.parametrize("engine", ["auto", "lite", "torch"])
def test_a_fifo_input_is_refused_before_anything_opens_it(engine: str, tmp_path: Path, capsys, speech_bundle) -> None:
    """`seqrec transcribe fifo.wav good.wav`: the engine choice used to open the FIFO (and wait
    for a writer for ever); now it is one error line and the good file is transcribed."""
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    good = _wav(tmp_path / "good.wav", 0.6)
    t0 = time.monotonic()
    with FifoWatchdog(fifo) as dog:
        code, rows, errors, err = run_cli(capsys, "transcribe", "--engine", engine, "--model", str(speech_bundle),
                                       "--lm", "none", "--format", "json", str(fifo), str(good))  # fmt: skip
    assert not dog.fired, f"something opened the FIFO ({time.monotonic() - t0:.1f} s)"
    assert code == 1 and [r["path"] for r in rows] == [str(good)] and "Traceback" not in err
    assert len(errors) == 1 and errors[0].startswith(f"seqrec: error: {fifo}: ") and "not a regular file" in errors[0]


@linux_only
def test_devices_and_fifos_are_refused_by_label_too(tmp_path: Path, capsys, video_bundle) -> None:
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    good = _video(tmp_path / "good.mp4", 8)
    with FifoWatchdog(fifo) as dog:
        code, rows, errors, err = run_cli(capsys, "label", "--model", str(video_bundle), "--format", "json", "--top-k", "1",
                                       str(fifo), "/dev/zero", str(good))  # fmt: skip
    assert not dog.fired
    assert code == 1 and [r["path"] for r in rows] == [str(good)] and "Traceback" not in err
    assert [e.split(": ")[2] for e in errors] == [str(fifo), "/dev/zero"]
    assert all("not a regular file" in e for e in errors)


# --------------------------------------------------------------------------- 4. windows


def test_a_stride_below_one_frame_interval_is_refused_per_file(tmp_path: Path, capsys, video_bundle) -> None:
    """`label --window 1 --stride 0.0001` on a 2.7 s clip made 27,000 windows, most of them the
    same frames (over two minutes, no output): refused, naming the frame interval."""
    from data_prep.video_io import VideoError, iter_windows

    clip = _video(tmp_path / "clip.mp4", 27, fps=10.0)  # 2.7 s, one frame every 0.1 s
    with pytest.raises(VideoError, match=r"frame interval \(0\.1 s"):
        next(iter_windows(clip, 1.0, 0.0001, num_segments=4, size=32))
    t0 = time.monotonic()
    base = ["label", "--model", str(video_bundle), "--format", "json", "--top-k", "1", "--window", "1"]
    code, rows, errors, err = run_cli(capsys, *base, "--stride", "0.0001", str(clip))
    assert code == 1 and rows == [] and len(errors) == 1 and "Traceback" not in err
    assert errors[0].startswith(f"seqrec: error: {clip}: ") and "0.1 s" in errors[0]
    assert time.monotonic() - t0 < 10
    code, rows, errors, _ = run_cli(capsys, *base, "--stride", "0.1", str(clip))  # one frame interval is fine
    assert code == 0 and errors == [] and len(rows[0]["segments"]) >= 15


def test_the_window_count_is_bounded_before_decoding(tmp_path: Path, capsys, video_bundle, monkeypatch) -> None:
    import data_prep.video_io as video_io

    clip = _video(tmp_path / "clip.mp4", 40, fps=10.0)  # 4 s: 39 windows of 0.2 s every 0.1 s
    other = _video(tmp_path / "other.mp4", 8, fps=10.0)
    prepared = []
    real = video_io._prepare
    monkeypatch.setattr(video_io, "_prepare", lambda *a: prepared.append(1) or real(*a))
    base = ["label", "--model", str(video_bundle), "--format", "json", "--top-k", "1", "--window", "0.2", "--stride", "0.1"]
    code, rows, errors, err = run_cli(capsys, *base, "--max-windows", "10", str(clip))
    assert code == 1 and rows == [] and len(errors) == 1 and "Traceback" not in err
    assert errors[0].startswith(f"seqrec: error: {clip}: ") and "--max-windows" in errors[0] and "10" in errors[0]
    assert prepared == []  # refused from the header, before a frame was decoded
    count = len(list(video_io.iter_windows(clip, 0.2, 0.1, num_segments=4, size=32)))
    assert count >= 35
    prepared.clear()
    code, rows, errors, _ = run_cli(capsys, *base, "--max-windows", str(count), str(clip), str(other))
    assert code == 0 and errors == [] and len(rows[0]["segments"]) == count and len(rows) == 2
    # A header that understates the length: the windows are counted as they come too.
    header_frames = lambda self, prop: 2.0 if prop == video_io.cv2.CAP_PROP_FRAME_COUNT else self._cap.get(prop)  # noqa: E731
    monkeypatch.setattr(video_io._LimitedCapture, "get", header_frames, raising=False)
    with use_limits(Limits(max_windows=3)), pytest.raises(Exception, match="--max-windows"):
        list(video_io.iter_windows(clip, 0.2, 0.1, num_segments=4, size=32))
    assert len(list(video_io.iter_windows(clip, 0.2, 0.1, num_segments=4, size=32))) == count


# --------------------------------------------------------------------------- 10. lying headers


@needs_ffmpeg
def test_the_short_file_reader_stops_at_its_limit_whatever_the_header_says(tmp_path: Path) -> None:
    from data_prep.audio import AudioTooLong, audio_info, load_waveform
    from pipeline.limits import LimitError

    liar = lying_mkv(tmp_path / "liar.mkv", 5.0, claimed=1.0)
    assert audio_info(liar).duration == pytest.approx(1.0)  # the header's claim
    assert load_waveform(liar, backend="numpy").size == 5 * SR  # the truth
    with pytest.raises(AudioTooLong, match="past 2 s"):
        load_waveform(liar, backend="numpy", max_seconds=2.0)
    wav = _wav(tmp_path / "a.wav", 3.0)
    with pytest.raises(AudioTooLong):
        load_waveform(wav, backend="numpy", max_seconds=2.0)
    with use_limits(Limits(max_audio_s=2.5)):
        for path in (liar, wav):
            with pytest.raises(LimitError, match="--max-audio-duration"):
                load_waveform(path, backend="numpy")


@needs_ffmpeg
def test_a_file_longer_than_its_header_says_goes_the_long_file_way(tmp_path: Path, monkeypatch, speech_bundle) -> None:
    """A Matroska header that claims 1 s for 5 s of audio: past the short-file limit (2 s here,
    60 s in use) the file is read block-wise, as a long file, so memory stays flat."""
    import pipeline.inference.long_audio as long_audio
    from pipeline.inference.transcriber import Transcriber

    liar = lying_mkv(tmp_path / "liar.mkv", 5.0, claimed=1.0)
    short = _wav(tmp_path / "short.wav", 1.0)
    long_calls = []
    real = long_audio.transcribe_long
    monkeypatch.setattr(long_audio, "transcribe_long", lambda tr, path, **kw: long_calls.append(Path(path)) or real(tr, path, **kw))
    results = list(Transcriber.from_pretrained(speech_bundle, lm="none").transcribe_iter([short, liar, short], long_audio_s=2.0))
    assert [r.path for r in results] == [str(short), str(liar), str(short)]
    assert all(r.error is None for r in results), [r.error for r in results]
    assert long_calls == [liar]
    assert results[1].duration == pytest.approx(5.0, abs=0.01)
    from pipeline.inference.lite import LiteTranscriber  # the torch-free engine: the same way

    monkeypatch.setattr(long_audio, "LONG_AUDIO_S", 2.0)
    lite = list(LiteTranscriber.from_pretrained(speech_bundle, lm="none").transcribe_iter([short, liar, short]))
    assert [r.error for r in lite] == [None] * 3 and long_calls == [liar, liar]
    assert [r.text for r in lite] == [r.text for r in results] and lite[1].duration == pytest.approx(5.0, abs=0.01)


@needs_ffmpeg
def test_audio_past_max_audio_duration_is_refused_while_reading(tmp_path: Path, monkeypatch, capsys, speech_bundle) -> None:
    """Both ways in: an honest long file (the block-wise reader of either engine) and the lying
    one (the whole-file reader, then the block-wise one).
    Each gets one error line naming --max-audio-duration; the short file goes on."""
    import pipeline.inference.long_audio as long_audio
    from pipeline.inference.lite import LiteTranscriber

    monkeypatch.setattr(long_audio, "LONG_AUDIO_S", 2.0)
    lite_runs = []
    real_lite = LiteTranscriber.transcribe_iter
    monkeypatch.setattr(LiteTranscriber, "transcribe_iter", lambda self, paths, **kw: lite_runs.append(paths) or real_lite(self, paths, **kw))
    liar = lying_mkv(tmp_path / "liar.mkv", 5.0, claimed=1.0)
    honest = _wav(tmp_path / "honest.wav", 5.0)
    short = _wav(tmp_path / "short.wav", 1.0)
    base = ["transcribe", "--model", str(speech_bundle), "--lm", "none", "--format", "json"]
    limit = ["--max-audio-duration", "3"]
    for engine, files, bad in (("auto", [short, honest], honest), ("torch", [short, honest], honest),
                               ("torch", [liar, short], liar)):  # fmt: skip
        code, rows, errors, err = run_cli(capsys, *base, *limit, "--engine", engine, *map(str, files))
        assert code == 1 and [r["path"] for r in rows] == [str(short)] and "Traceback" not in err, err
        assert len(errors) == 1 and errors[0].startswith(f"seqrec: error: {bad}: "), errors
        assert "--max-audio-duration" in errors[0] and "past 3 s" in errors[0], errors
    assert len(lite_runs) == 1  # --engine auto ran the lite engine first
    code, rows, errors, _ = run_cli(capsys, *base, str(honest), str(short))  # auto: lite, then torch for honest.wav
    assert code == 0 and errors == [] and [r["duration"] for r in rows] == [pytest.approx(5.0, abs=0.01), pytest.approx(1.0)]
    assert len(lite_runs) == 2
    code, rows, errors, _ = run_cli(capsys, *base, str(liar))
    assert code == 0 and errors == [] and rows[0]["duration"] == pytest.approx(5.0, abs=0.01)


# --------------------------------------------------------------------------- 11. standard input


def test_standard_input_is_bounded_and_the_other_files_go_on(tmp_path: Path, monkeypatch, capsys, speech_bundle) -> None:
    """`cat /dev/zero | seqrec transcribe - b.wav`: the copy stops at --max-stdin-bytes, '-' gets
    one error line, b.wav its row, and the copy is gone."""
    import tempfile

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    good = _wav(tmp_path / "b.wav", 0.6)
    base = ["transcribe", "--model", str(speech_bundle), "--lm", "none", "--format", "json", "--max-stdin-bytes", "100000"]
    for extra in ([], ["--raw"]):
        source = Endless()
        _stdin(monkeypatch, source)
        code, rows, errors, err = run_cli(capsys, *base, *extra, "-", str(good))
        assert code == 1 and [r["path"] for r in rows] == [str(good)] and "Traceback" not in err
        assert len(errors) == 1 and errors[0].startswith("seqrec: error: -: ") and "--max-stdin-bytes" in errors[0]
        assert source.given <= 100000 + (2 << 20)  # stopped at the limit (and one block)
        assert list(tmp.iterdir()) == []
    _stdin(monkeypatch, Endless())
    code, rows, errors, _ = run_cli(capsys, *base, "-")  # only standard input: still one line, exit 1
    assert code == 1 and rows == [] and len(errors) == 1 and list(tmp.iterdir()) == []
    _stdin(monkeypatch, io.BytesIO(_wav(tmp_path / "in.wav", 0.5).read_bytes()))
    code, rows, errors, _ = run_cli(capsys, *base, "-")  # under the limit: transcribed
    assert code == 0 and rows[0]["path"] == "-" and errors == []


def _wait_for(ready, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate(timeout=10)[1].decode(errors="replace")[-2000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@linux_only
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_mid_copy_remove_the_copy(signum: int, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "transcribe", "--lm", "none", "-"], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=_child_env(TMPDIR=str(tmp)))  # fmt: skip
    try:
        proc.stdin.write(bytes(1 << 20))
        proc.stdin.flush()
        _wait_for(lambda: any(p.stat().st_size > 0 for p in tmp.glob("seqrec-stdin-*/*")), proc)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)  # (closes standard input too)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signum, err.decode(errors="replace")[-2000:]
    assert list(tmp.iterdir()) == []
    lines = err.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqrec: ") and "Traceback" not in lines[0]


def _big_arpa(path: Path, words: int) -> Path:
    """A valid 2-gram ARPA file of about ``words`` random words (KenLM needs a bigram section)."""
    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = sorted({"".join(rng.choice(letters, int(k))) for k in rng.integers(4, 12, words)})
    with open(path, "w") as fh:
        fh.write(f"\\data\\\nngram 1={len(vocab) + 3}\nngram 2=1\n\n\\1-grams:\n-1.0\t<unk>\n-99\t<s>\t-0.5\n-1.0\t</s>\n")
        fh.writelines(f"-6.0\t{w}\n" for w in vocab)
        fh.write(f"\n\\2-grams:\n-0.5\t<s> {vocab[0]}\n\n\\end\\\n")
    return path


@linux_only
def test_the_word_lm_loads_without_any_temporary_file(tmp_path: Path, speech_bundle: Path) -> None:
    """The word-LM loader once wrote a lexicon into a temporary directory while KenLM loaded (left
    behind by a SIGTERM then). The search is now built from the words in memory: a run with a
    50,000-word LM of the user's writes nothing to the temporary directory."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    arpa = _big_arpa(tmp_path / "big.arpa", 50_000)
    wav = _wav(tmp_path / "a.wav", 0.5)
    for engine in ("torch", "lite"):
        proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "transcribe", "--engine", engine, "--model",
                               str(speech_bundle), "--lm", str(arpa), "--decode-silence", str(wav)], cwd=REPO,
                              capture_output=True, env=_child_env(TMPDIR=str(tmp)), timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
        assert list(tmp.iterdir()) == [], engine


# --------------------------------------------------------------------------- smaller


def test_a_bad_output_dir_is_a_usage_error_before_any_decoding(tmp_path: Path, capsys, monkeypatch, video_bundle) -> None:
    import pipeline.cli as cli

    wav = _wav(tmp_path / "a.wav", 0.4)
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **kw: False if Path(p) == locked else real_access(p, m, **kw))
    monkeypatch.setattr(cli, "_transcribe_files", lambda *a: pytest.fail("decoding started"))
    for out, reason in ((a_file, "not a directory"), (a_file / "sub", "not a directory"), (locked, "not writable")):
        for command in (["transcribe"], ["label", "--model", str(video_bundle)]):
            code, rows, errors, err = run_cli(capsys, *command, "--output-dir", str(out), str(wav))
            assert code == 2 and rows == [] and "Traceback" not in err
            assert len(errors) == 1 and errors[0].startswith(f"seqrec: error: {out}: ") and reason in errors[0], errors
    assert not (tmp_path / "new").exists()
    monkeypatch.setattr(cli, "_transcribe_files", lambda *a: 0)
    assert cli_main(["transcribe", "--output-dir", str(tmp_path / "new" / "deeper"), str(wav)]) == 0  # may be made later


@needs_ffmpeg
def test_a_folder_of_video_containers_is_transcribed(tmp_path: Path, capsys, speech_bundle) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=600:duration=1", "-f", "lavfi", "-i", "testsrc=duration=1:size=64x48:rate=10",
            "-shortest", str(folder / "clip.mp4"))  # fmt: skip
    for name in ("talk.mkv", "memo.mov"):
        _ffmpeg("-f", "lavfi", "-i", "sine=frequency=500:duration=1", str(folder / name))
    code, rows, errors, err = run_cli(capsys, "transcribe", "--model", str(speech_bundle), "--lm", "none", "--format", "json", str(folder))
    assert code == 0 and errors == [], err
    assert sorted(Path(r["path"]).name for r in rows) == ["clip.mp4", "memo.mov", "talk.mkv"]


def test_onnxruntime_writes_nothing_under_the_cache_directory(tmp_path: Path, speech_bundle: Path) -> None:
    """onnxruntime (1.29+) keeps a telemetry database and a device id under
    ``$XDG_CACHE_HOME/Microsoft/DeveloperTools/.onnxruntime`` unless ORT_DISABLE_TELEMETRY=1 is set
    before it is imported: seqrec sets it (the CLI, the lite engine and the VAD)."""
    wav = _wav(tmp_path / "a.wav", 0.5)
    runs = {
        "cli": [sys.executable, "-m", "pipeline.cli", "transcribe", "--engine", "lite", "--model", str(speech_bundle), str(wav)],
        "api": [sys.executable, "-c", "import sys; from pipeline import LiteTranscriber; "
                "print(LiteTranscriber.from_pretrained(sys.argv[1]).transcribe([sys.argv[2]])[0].error)",
                str(speech_bundle), str(wav)],
        "vad": [sys.executable, "-c", "import numpy as np; from data_prep.vad import SileroDetector; "
                "SileroDetector().push(np.zeros(16000, np.float32))"],
    }  # fmt: skip
    for name, cmd in runs.items():
        home = tmp_path / name
        env = {k: v for k, v in _child_env(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache")).items()
               if k != "ORT_DISABLE_TELEMETRY"}  # fmt: skip
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert not (home / ".cache" / "Microsoft").exists(), name
