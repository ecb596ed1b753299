"""Fuzzing the audio and video loaders with hypothesis.

Random bytes, random truncations and random byte corruptions of real small files (WAV, FLAC,
MP4, AVI) must only ever give a valid result or raise ``AudioError``/``VideoError``: never
another exception, never a hang, never a crash of the process.

Each example runs under a time guard: ``signal.alarm`` interrupts Python-level waits (the
ffmpeg subprocess), and ``faulthandler`` ends the run with tracebacks if native code hangs.
Set ``SEQREC_FUZZ_EXAMPLES=500`` to fuzz longer with fresh random seeds.
"""

from __future__ import annotations

import contextlib
import faulthandler
import math
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_prep import audio as audio_mod
from data_prep.audio import AudioError, load_audio
from data_prep.video_io import VideoError, load_clip, probe_video, write_video

_EXAMPLES = int(os.environ.get("SEQREC_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=_EXAMPLES or 40,
    deadline=None,
    derandomize=not _EXAMPLES,  # reproducible in `make test`; random when fuzzing on purpose
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
EXAMPLE_TIMEOUT_S = 20


class ExampleTimeout(Exception):
    """Raised by the alarm when one example runs too long."""


@contextlib.contextmanager
def time_guard(seconds: int = EXAMPLE_TIMEOUT_S):
    """Fails an example that hangs: alarm for Python-level waits, faulthandler for native code."""

    def on_alarm(signum, frame):
        raise ExampleTimeout(f"example still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    faulthandler.dump_traceback_later(seconds * 3, exit=True)  # native hang: end with tracebacks
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses SIGALRM")


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    """Bytes of small valid files to truncate and corrupt."""
    root = tmp_path_factory.mktemp("fuzz_seeds")
    t = np.arange(4000) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sf.write(root / "a.wav", tone, 16000, subtype="PCM_16")
    sf.write(root / "a.flac", tone, 16000, format="FLAC")
    compressed = [f for f in ("MP3", "OGG") if f in sf.available_formats()]  # recent libsndfile has both
    for fmt in compressed:
        sf.write(root / f"a.{fmt.lower()}", tone, 16000, format=fmt)
    frames = [np.full((24, 32, 3), 25 * i, np.uint8) for i in range(8)]
    mp4 = write_video(root / "v.mp4", frames, 10.0)
    avi = write_video(root / "v.avi", frames, 10.0, fourcc="MJPG")
    files = {"wav": root / "a.wav", "flac": root / "a.flac", "mp4": mp4, "avi": avi}
    files.update({fmt.lower(): root / f"a.{fmt.lower()}" for fmt in compressed})
    return {name: p.read_bytes() for name, p in files.items()}


@pytest.fixture(autouse=True)
def short_ffmpeg_timeout(monkeypatch):
    monkeypatch.setattr(audio_mod, "FFMPEG_TIMEOUT_S", 10.0)


def _mutate(data: bytes, cut: float, flips: list[tuple[float, int]]) -> bytes:
    """Truncates at fraction ``cut`` (1.0 keeps all) and overwrites bytes at fractional positions."""
    out = bytearray(data[: max(1, int(len(data) * cut))])
    for pos, value in flips:
        out[min(len(out) - 1, int(len(out) * pos))] = value
    return bytes(out)


MUTATIONS = st.tuples(
    st.one_of(st.just(1.0), st.floats(0.0, 1.0)),
    st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=6),
)
RANDOM_BYTES = st.binary(min_size=0, max_size=3000)
HEADERS = st.sampled_from([b"", b"RIFF\x24\x10\x00\x00WAVEfmt ", b"fLaC", b"OggS", b"ID3\x03",
                           b"\x00\x00\x00\x18ftypmp42", b"RIFF\x00\x00\x00\x00AVI LIST"])  # fmt: skip


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _check_audio(path: Path) -> None:
    with time_guard():
        try:
            wave = load_audio(path, target_sr=16000)
        except AudioError as exc:
            assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
            return
    assert wave.ndim == 1 and wave.dtype.is_floating_point
    assert bool(wave.isfinite().all()) and (wave.numel() == 0 or float(wave.abs().max()) <= 1.0)


def _check_video(path: Path) -> None:
    with time_guard():
        try:
            info = probe_video(path)
        except VideoError as exc:
            assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
            info = None
        try:
            clip = load_clip(path, 4, size=16)
        except VideoError as exc:
            assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
            clip = None
    if info is not None:
        assert info.num_frames > 0 and info.width > 0 and info.height > 0
        assert math.isfinite(info.fps) and info.fps > 0 and math.isfinite(info.duration) and info.duration > 0
    if clip is not None:
        assert clip.shape == (4, 16, 16, 3) and clip.dtype == np.uint8


@pytest.mark.slow
@FUZZ
@given(header=HEADERS, body=RANDOM_BYTES, ext=st.sampled_from(["wav", "flac", "mp3", "ogg", "m4a"]))
def test_audio_loader_random_bytes(tmp_path: Path, header: bytes, body: bytes, ext: str) -> None:
    _check_audio(_write(tmp_path, f"x.{ext}", header + body))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["wav", "flac", "mp3", "ogg"])
@settings(FUZZ, max_examples=_EXAMPLES or 10)  # per format: the same 40 examples in all
@given(mutation=MUTATIONS)
def test_audio_loader_truncated_and_corrupted(tmp_path: Path, seeds, kind: str, mutation) -> None:
    if kind not in seeds:
        pytest.skip(f"this libsndfile cannot write {kind}")
    _check_audio(_write(tmp_path, f"x.{kind}", _mutate(seeds[kind], *mutation)))


@pytest.mark.slow
@FUZZ
@given(header=HEADERS, body=RANDOM_BYTES, ext=st.sampled_from(["mp4", "avi", "mkv"]))
def test_video_loader_random_bytes(tmp_path: Path, header: bytes, body: bytes, ext: str) -> None:
    _check_video(_write(tmp_path, f"x.{ext}", header + body))


@pytest.mark.slow
@FUZZ
@given(kind=st.sampled_from(["mp4", "avi"]), mutation=MUTATIONS)
def test_video_loader_truncated_and_corrupted(tmp_path: Path, seeds, kind: str, mutation) -> None:
    _check_video(_write(tmp_path, f"x.{kind}", _mutate(seeds[kind], *mutation)))


@pytest.mark.parametrize("rate", [1, 999, 1001, 44101, 767999, 2**31 - 1])
def test_corrupt_sample_rate_in_wav_header(tmp_path: Path, seeds, rate: int) -> None:
    """Found by fuzzing: 44101 Hz took 84 s and 12 GB to resample, 767999 Hz raised RuntimeError."""
    import struct
    import time

    raw = bytearray(seeds["wav"])
    fmt = raw.index(b"fmt ")
    raw[fmt + 12 : fmt + 16] = struct.pack("<I", rate)
    path = _write(tmp_path, "rate.wav", bytes(raw))
    t0 = time.perf_counter()
    with time_guard(10):
        try:
            wave = load_audio(path, target_sr=16000)
        except AudioError as exc:
            assert 1000 <= rate <= 1_000_000 or "implausible sample rate" in str(exc)
            wave = None
    assert time.perf_counter() - t0 < 5
    if wave is not None:  # 4000 samples at the claimed rate
        assert abs(wave.numel() - 4000 * 16000 / rate) <= 0.002 * 4000 * 16000 / rate + 2


@pytest.mark.skipif(__import__("shutil").which("ffmpeg") is None, reason="needs the ffmpeg command")
def test_timestamp_gap_of_1e9_seconds_does_not_hang_windows(tmp_path: Path) -> None:
    """A corrupt timestamp 1e9 s ahead used to step through 2e9 empty windows one by one."""
    import subprocess
    import time

    from data_prep.video_io import iter_windows

    path = tmp_path / "gap.mkv"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=gray:s=32x32:r=5:d=1",
         "-vf", "setpts='PTS+if(gte(N,3),1000000000/TB,0)'", "-fps_mode", "vfr", "-c:v", "mjpeg", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    t0 = time.perf_counter()
    with time_guard(10):
        wins = list(iter_windows(path, 1.0, 0.5, num_segments=2, size=16))
        info = probe_video(path)
    assert time.perf_counter() - t0 < 5
    assert [w.start_s for w in wins] == [0.0, 1e9] and info.num_frames == 5
    assert wins[1].end_s == pytest.approx(1e9 + 1.0)


def test_mp3_whose_xing_header_claims_trillions_of_frames(tmp_path: Path) -> None:
    """Found by fuzzing: one read() of the declared length tried to allocate terabytes."""
    import struct

    if "MP3" not in sf.available_formats():
        pytest.skip("libsndfile lacks MP3")
    path = tmp_path / "xing.mp3"
    sf.write(path, (0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)).astype(np.float32), 16000, format="MP3")
    data = bytearray(path.read_bytes())
    at = data.find(b"Xing")
    assert at >= 0 and struct.unpack(">I", data[at + 4 : at + 8])[0] & 1  # the frame-count field
    data[at + 8 : at + 12] = struct.pack(">I", 0xFFFFFFF0)
    path.write_bytes(bytes(data))
    assert sf.info(path).frames > 10**12  # the header really lies
    with time_guard(10):
        wave = load_audio(path, target_sr=16000)
    assert 7000 <= wave.numel() <= 9000


def test_awkward_rate_ratio_resamples_accurately() -> None:
    import torch

    from data_prep.audio import resample

    t = torch.arange(44101) / 44101
    out = resample(torch.sin(2 * torch.pi * 440 * t), 44101, 16000)
    assert abs(out.numel() - 16000) <= 16
    peak_hz = float(torch.fft.rfft(out).abs().argmax()) * 16000 / out.numel()
    assert abs(peak_hz - 440) < 2


def test_time_guard_interrupts_a_hang() -> None:
    import time

    with pytest.raises(ExampleTimeout), time_guard(1):
        time.sleep(5)
