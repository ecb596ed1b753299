"""Audio file reading: any file in, a mono float32 waveform at the sample rate asked for out.

soundfile (libsndfile) reads wav/flac/ogg/mp3 and the other formats it knows. Anything it cannot
open (mp4/m4a/webm containers, video files with an audio track, ...) is decoded by the ``ffmpeg``
command-line tool through a pipe. Every failure is an :class:`AudioError` whose message is one
line, ``"<path>: <reason>"``, so a caller can log it and go on with the next file.

The reading itself is numpy (:func:`load_waveform`); :func:`load_audio` wraps it in a torch
tensor. Resampling uses torchaudio's sinc resampler, or with ``backend="numpy"`` a numpy port of
it (:func:`resample_sinc`), so the torch-free lite engine (:mod:`pipeline.inference.lite`) reads
audio with this same code. Importing this module does not import torch.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import soundfile as sf

from pipeline.errors import SeqrecError
from pipeline.limits import LimitError, current_limits

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: Seconds an ffmpeg/ffprobe subprocess may run before it is killed.
FFMPEG_TIMEOUT_S = 300.0
#: Sample rates outside this range come from corrupt headers (and would make resampling
#: allocate absurd amounts of memory), so they are refused.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 1_000_000
#: Samples (frames x channels) decoded per read, which bounds the memory of one block.
_READ_BLOCK_VALUES = 1 << 22
#: Largest term of the reduced resampling ratio used as is (see :func:`resample`).
_MAX_RATIO_TERM = 1000

_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}


#: Containers ffmpeg may read as audio input. Playlists and other demuxers that open further
#: files or URLs (hls, concat, ...) are refused: a ".wav" that is really an HLS or concat
#: playlist would otherwise make ffmpeg read whatever file it names.
AUDIO_DEMUXERS = (
    "wav,w64,flac,ogg,mp3,mov,matroska,aac,aiff,asf,avi,amr,au,caf,wv,ape,mpeg,mpegts,flv,ac3,eac3,dts,"
    "truehd,tta,voc"
)
#: Input options of every ffmpeg/ffprobe call on user files: local files only, listed containers only.
FFMPEG_INPUT_GUARD = ("-protocol_whitelist", "file,pipe", "-format_whitelist", AUDIO_DEMUXERS)


class AudioError(SeqrecError):
    """An audio file cannot be used. ``str()`` is one line: ``"<path>: <reason>"``."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = " ".join(str(reason).split())  # one line, whatever the tool printed
        super().__init__(f"{self.path}: {self.reason}")


class AudioTooLong(AudioError):
    """The audio runs past ``limit`` seconds, counted while decoding (whatever its header says).

    Raised by :func:`load_waveform` with ``max_seconds``: a whole-file reader that will not
    hold more; the caller can read the file block-wise instead (a long recording).
    """

    def __init__(self, path: str | Path, limit: float, note: str = "") -> None:
        self.limit = limit
        super().__init__(path, f"the audio runs past {limit:g} s{note}")


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, read from its header (or from ffprobe).

    Attributes:
        duration: Length in seconds (``frames / sample_rate``).
        sample_rate: Native sample rate in Hz.
        channels: Number of channels.
        frames: Number of samples per channel.
    """

    duration: float
    sample_rate: int
    channels: int
    frames: int


def load_audio(path: str | Path, target_sr: int = 16000, *, max_seconds: float | None = None) -> torch.Tensor:
    """Reads an audio (or video) file as a mono waveform tensor (see :func:`load_waveform`).

    Args:
        path: Any file soundfile or ffmpeg can decode.
        target_sr: Output sample rate in Hz.
        max_seconds: See :func:`load_waveform`.

    Returns:
        (N,) float32 tensor with values in [-1, 1], sampled at ``target_sr``.

    Raises:
        AudioError: missing/unreadable/empty file, no audio stream, undecodable data.
        AudioTooLong: more than ``max_seconds`` of audio.
        LimitError: more than the run's ``max_audio_s`` of audio.
        ValueError: ``target_sr`` is not a positive integer.
    """
    # lazy: torch only for tensor input; the torch-free engine reads files through this module
    import torch

    return torch.from_numpy(load_waveform(path, target_sr, max_seconds=max_seconds))


def load_waveform(
    path: str | Path, target_sr: int = 16000, *, backend: Literal["torch", "numpy"] = "torch",
    max_seconds: float | None = None,
) -> np.ndarray:  # fmt: skip
    """Reads an audio (or video) file as a mono numpy waveform.

    Multi-channel audio is averaged to mono, then resampled to ``target_sr``. NaN/inf samples
    become 0 and float samples outside [-1, 1] are clipped, each with a warning naming the file.

    The length is counted while decoding, never taken from the header (a header may claim 10 s
    for three hours): the reading stops as soon as the audio runs past ``max_seconds`` or the
    run's ``max_audio_s`` (:mod:`pipeline.limits`), so memory is bounded by the smaller.

    Args:
        path: Any file soundfile or ffmpeg can decode.
        target_sr: Output sample rate in Hz.
        backend: The resampler: ``"torch"`` (torchaudio) or ``"numpy"`` (:func:`resample_sinc`,
            the same kernel, without importing torch).
        max_seconds: The most audio to read whole (None: up to ``max_audio_s``).

    Returns:
        (N,) float32 array with values in [-1, 1], sampled at ``target_sr``.

    Raises:
        AudioError: missing/unreadable/empty file, no audio stream, undecodable data.
        AudioTooLong: more than ``max_seconds`` of audio (when that is below ``max_audio_s``).
        LimitError: more than ``max_audio_s`` of audio.
        ValueError: ``target_sr`` is not a positive integer, or an unknown ``backend``.
    """
    if int(target_sr) != target_sr or target_sr <= 0:
        raise ValueError(f"target_sr must be a positive integer, got {target_sr!r}")
    if backend not in ("torch", "numpy"):
        raise ValueError(f"backend must be 'torch' or 'numpy', got {backend!r}")
    target_sr = int(target_sr)
    path = Path(path)
    _check_file(path)
    limit_s = current_limits().max_audio_s
    cap_s = limit_s if max_seconds is None else min(float(max_seconds), limit_s)

    def too_long() -> AudioError | LimitError:
        if cap_s < limit_s:
            return AudioTooLong(path, cap_s)
        return LimitError(path, f"the audio runs past {limit_s:g} s", "max_audio_s", limit_s)

    bound = _Bound(cap_s, too_long)
    try:
        with sf.SoundFile(str(path)) as fh:
            sr = fh.samplerate
            declared = fh.frames
            is_float = fh.subtype in _FLOAT_SUBTYPES
            if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
                raise AudioError(
                    path, f"implausible sample rate {sr} Hz in the header (expected "
                    f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz; is the file corrupt?)"
                )
            mono = _read_mono(fh, bound.frames(sr), bound.error)
    except sf.LibsndfileError as exc:
        sf_reason = _sf_reason(exc)
        log.debug("%s: soundfile cannot read it (%s); trying ffmpeg", path, sf_reason)
        wave = _ffmpeg_decode(path, target_sr, sf_reason, bound=bound)
        return _sanitize(wave, path, is_float=True)
    if mono.size == 0:
        # A header may claim 0 samples while data follows (some streaming writers do this);
        # ffmpeg reads such a file to its end, and finds nothing in a header-only file.
        wave = _ffmpeg_decode(path, target_sr, "header declares no samples", required=False, bound=bound)
        if wave is None or wave.size == 0:
            raise AudioError(path, "zero-length audio (the file holds no samples)")
        log.warning("%s: header declares no samples; decoded %d with ffmpeg", path, wave.size)
        return _sanitize(wave, path, is_float=is_float)
    if mono.size < declared:
        log.warning(
            "%s: truncated or corrupt: header declares %d frames, only %d decode",
            path,
            declared,
            mono.size,
        )
    mono = _sanitize(mono, path, is_float=is_float)
    if sr != target_sr:
        try:
            if backend == "numpy":
                mono = resample(mono, sr, target_sr)
            else:
                # lazy: torch only for tensor input; the torch-free engine reads files through this module
                import torch

                mono = resample(torch.from_numpy(mono), sr, target_sr).numpy()
            mono = np.clip(mono, -1.0, 1.0)  # sinc overshoot stays in range
        except (RuntimeError, MemoryError, ValueError) as exc:  # e.g. out of memory for a huge file
            raise AudioError(path, f"cannot resample {sr} Hz -> {target_sr} Hz: {exc}") from None
    return mono


def reduced_ratio(orig_sr: int, new_sr: int) -> tuple[int, int]:
    """The resampling ratio ``orig_sr / new_sr`` in lowest terms, each at most
    :data:`_MAX_RATIO_TERM` (the closest such fraction when the exact one has larger terms)."""
    g = math.gcd(orig_sr, new_sr)
    num, den = orig_sr // g, new_sr // g
    if max(num, den) > _MAX_RATIO_TERM:
        ratio = Fraction(orig_sr, new_sr)
        approx = ratio.limit_denominator(max(1, _MAX_RATIO_TERM // max(1, math.ceil(ratio))))
        log.debug("resampling %d -> %d Hz with the ratio %s (exact: %s)", orig_sr, new_sr, approx, ratio)
        num, den = approx.numerator, approx.denominator
    return num, den


def resample(wave: torch.Tensor | np.ndarray, orig_sr: int, new_sr: int) -> torch.Tensor | np.ndarray:
    """Band-limited sinc resampling of audio, also for awkward rate ratios.

    A tensor (..., N) goes through ``torchaudio.functional.resample``; a numpy array (N,)
    through :func:`resample_sinc`, its numpy port (the same output up to float32 rounding).

    torchaudio's polyphase kernel has ``new_sr / g`` phases of ``~orig_sr / g`` taps, with
    ``g = gcd(orig_sr, new_sr)``: a rate such as 44101 Hz (coprime with 16000) would need a
    kernel of gigabytes. When the reduced ratio has more than :data:`_MAX_RATIO_TERM` in either
    term, it is replaced by the closest fraction with small terms; the rate error is below
    0.1 % (a pitch and duration change nobody hears).

    Returns:
        The same type as ``wave``, with ``ceil(N * new_sr / orig_sr)`` samples (approximately,
        for an approximated ratio) in the last dimension.
    """
    num, den = reduced_ratio(orig_sr, new_sr)
    if isinstance(wave, np.ndarray):
        return resample_sinc(wave, num, den)
    return _resampler(num, den, wave.dtype, wave.device)(wave)


@functools.lru_cache(maxsize=8)
def _resampler(orig_freq: int, new_freq: int, dtype: torch.dtype, device: torch.device) -> torch.nn.Module:
    """torchaudio's ``Resample`` for one ratio, dtype and device: its sinc kernel is built
    once, not per call (``torchaudio.functional.resample`` rebuilds it every time; same kernel,
    same output). torch is imported here, not at the top: the lite engine reads audio without it."""
    # lazy: torchaudio only when a rate differs; the torch-free engine reads files through this module
    import torchaudio.transforms as T

    return T.Resample(orig_freq, new_freq, dtype=dtype).to(device)


def sinc_kernel(orig: int, new: int, lowpass_filter_width: int = 6, rolloff: float = 0.99) -> tuple[np.ndarray, int]:
    """torchaudio's polyphase Hann-windowed sinc kernel for a reduced ratio ``orig -> new``.

    Returns:
        (kernel (2 * width + orig, new) float32, width): output ``j * new + p`` is input
        samples ``j * orig - width ...`` (zero-padded) times column ``p``.
    """
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    idx = np.arange(-width, width + orig, dtype=np.float32)[None, :] / orig  # (1, K)
    t = np.arange(0, -new, -1, dtype=np.float32)[:, None] / new + idx  # (new, K)
    t *= base
    t = np.clip(t, -lowpass_filter_width, lowpass_filter_width)
    window = np.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t *= math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.where(t == 0, np.float32(1.0), np.sin(t) / t)
    return np.ascontiguousarray((kernel * (window * (base / orig))).T, dtype=np.float32), width


def resample_sinc(
    x: np.ndarray,
    orig_freq: int,
    new_freq: int,
    *,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
    block_frames: int = 8192,
) -> np.ndarray:
    """``torchaudio.functional.resample(x, orig_freq, new_freq)`` (Hann-windowed sinc) in numpy.

    The same polyphase kernel, computed the same way in float32: output ``j * new + p`` is
    the dot product of kernel row ``p`` with the ``2 * width + orig`` padded input samples
    from ``j * orig`` on (torchaudio's strided ``conv1d``), here ``block_frames`` strides at
    a time to bound memory. (``scipy.signal.resample_poly`` would cost a second of import
    time, and its Kaiser filter gives features up to 0.7 off in the top mel bands.)

    Args:
        x: (N,) samples.
        orig_freq: Their rate (or the ratio's numerator).
        new_freq: The rate wanted (or the ratio's denominator).

    Returns:
        (ceil(N * new_freq / orig_freq),) float32.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"resample_sinc takes (N,) samples, got shape {x.shape}")
    if orig_freq <= 0 or new_freq <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_freq} -> {new_freq}")
    g = math.gcd(int(orig_freq), int(new_freq))
    orig, new = int(orig_freq) // g, int(new_freq) // g
    if orig == new:
        return x
    kernel, width = sinc_kernel(orig, new, lowpass_filter_width, rolloff)
    length = x.size
    xpad = np.concatenate([np.zeros(width, np.float32), x, np.zeros(width + orig, np.float32)])
    frames = np.lib.stride_tricks.sliding_window_view(xpad, kernel.shape[0])[::orig]  # (n, K) view
    out = np.concatenate([
        (frames[i : i + block_frames] @ kernel).reshape(-1)  # (n, K) @ (K, new) -> (n * new,)
        for i in range(0, frames.shape[0], block_frames)
    ])
    return out[: math.ceil(new * length / orig)]


class _Bound:
    """The most audio :func:`load_waveform` reads (seconds), and the error for going past it."""

    def __init__(self, seconds: float, error) -> None:
        self.seconds, self.error = seconds, error

    def frames(self, rate: int) -> int | None:
        """The most frames at ``rate`` (None: no finite bound)."""
        return math.floor(self.seconds * rate) if math.isfinite(self.seconds) else None


def _read_mono(fh: sf.SoundFile, max_frames: int | None = None, too_long=None) -> np.ndarray:
    """Reads an open file to its end in blocks, averaging channels: (N,) float32.

    Reading in blocks bounds memory by what really decodes: a corrupt header may claim
    trillions of frames, and one ``read()`` would try to allocate them all at once. Past
    ``max_frames`` frames, raises ``too_long()`` (after one block more, at most).
    """
    block = max(1024, _READ_BLOCK_VALUES // max(1, fh.channels))
    parts = []
    total = 0
    while True:
        data = fh.read(block, dtype="float32", always_2d=True)  # (n, channels), n <= block
        if data.shape[0] == 0:
            break
        total += data.shape[0]
        if max_frames is not None and total > max_frames:
            raise too_long()
        parts.append(data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0].copy())
        if data.shape[0] < block:
            break
    if not parts:
        return np.zeros(0, np.float32)
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def audio_info(path: str | Path) -> AudioInfo:
    """Reads duration, sample rate, channels and frames without decoding the samples.

    Raises:
        AudioError: missing/unreadable/empty file, no audio stream, unknown format.
    """
    path = Path(path)
    _check_file(path)
    try:
        info = sf.info(str(path))
    except sf.LibsndfileError as exc:
        return _ffprobe_info(path, _sf_reason(exc))
    frames = int(info.frames)
    sr = int(info.samplerate)
    if frames == 0 and shutil.which("ffprobe") is not None:
        # Same case as in load_audio: a header claiming 0 samples with data behind it.
        try:
            probed = _ffprobe_info(path, "header declares no samples")
        except AudioError:
            probed = None
        if probed is not None and probed.frames > 0:
            return probed
    return AudioInfo(
        duration=frames / sr, sample_rate=sr, channels=int(info.channels), frames=frames
    )


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    if not os.access(path, os.R_OK):
        raise AudioError(path, "permission denied (file is not readable)")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")


def _sf_reason(exc: sf.LibsndfileError) -> str:
    msg = getattr(exc, "error_string", "") or str(exc)
    return msg.strip() or "unknown format"


def _sanitize(wave: np.ndarray, path: Path, *, is_float: bool) -> np.ndarray:
    """Zeroes NaN/inf and clips out-of-range float samples, warning about either."""
    finite = np.isfinite(wave)
    if not finite.all():
        bad = int(wave.size - np.count_nonzero(finite))
        log.warning("%s: replaced %d non-finite (NaN/inf) samples with 0", path, bad)
        wave = np.where(finite, wave, np.float32(0.0)).astype(np.float32)
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    if peak > 1.0:
        if is_float:
            log.warning("%s: float samples reach %.3g, outside [-1, 1]; clipping", path, peak)
        wave = np.clip(wave, -1.0, 1.0)
    return wave


def _require(tool: str, path: Path, sf_reason: str) -> str:
    exe = shutil.which(tool)
    if exe is None:
        raise AudioError(
            path,
            f"soundfile cannot read it ({sf_reason}) and {tool} is not installed to try "
            f"other formats (install it, e.g. apt-get install ffmpeg)",
        )
    return exe


def _run(cmd: list[str], path: Path) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=FFMPEG_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AudioError(
            path, f"{Path(cmd[0]).name} timed out after {FFMPEG_TIMEOUT_S:.0f} s"
        ) from None
    except OSError as exc:
        raise AudioError(path, f"cannot run {cmd[0]}: {exc}") from None


def _tail(stderr: bytes, path: Path) -> str:
    """The last line a tool printed, without the ``file:<path>:`` prefix it repeats."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    last = lines[-1] if lines else "no message"
    return last.removeprefix(f"file:{path}:").strip()


def _ffmpeg_decode(
    path: Path, target_sr: int, sf_reason: str, *, required: bool = True, bound: _Bound | None = None
) -> np.ndarray | None:
    """Decodes the first audio stream to (N,) float32 mono at ``target_sr`` with ffmpeg.

    With ``required=False`` a missing ffmpeg or a failed decode returns None instead of raising.
    With ``bound``, ffmpeg stops one second past it (``-t``), and more audio than the bound
    raises ``bound.error()``: the output never holds more than the bound and a second.
    """
    most = bound.frames(target_sr) if bound is not None else None
    stop = ["-t", f"{bound.seconds + 1.0:.6f}"] if most is not None else []
    if not required and shutil.which("ffmpeg") is None:
        return None
    exe = _require("ffmpeg", path, sf_reason)
    # "file:" stops ffmpeg reading a name such as "x:y.wav" as a protocol URL.
    cmd = [
        exe,
        "-nostdin",
        "-hide_banner",
        "-v",
        "error",
        *FFMPEG_INPUT_GUARD,
        "-i",
        f"file:{path}",
        "-map",
        "0:a:0",
        "-vn",
        "-ac",
        "1",
        "-ar",
        str(target_sr),
        *stop,
        "-f",
        "f32le",
        "pipe:1",
    ]
    proc = _run(cmd, path)
    if proc.returncode != 0:
        if not required:
            return None
        if "matches no streams" in proc.stderr.decode("utf-8", "replace"):
            raise AudioError(path, "no audio stream in the file")
        raise AudioError(
            path,
            f"cannot decode audio (soundfile: {sf_reason}; ffmpeg: {_tail(proc.stderr, path)})",
        )
    if most is not None and len(proc.stdout) // 4 > most:
        raise bound.error()
    wave = np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
    if wave.size == 0 and required:
        raise AudioError(path, "zero-length audio (nothing decoded)")
    return wave


def _ffprobe_info(path: Path, sf_reason: str) -> AudioInfo:
    exe = _require("ffprobe", path, sf_reason)
    cmd = [
        exe,
        "-v",
        "error",
        "-select_streams",
        "a:0",
        "-show_entries",
        "stream=sample_rate,channels,duration:format=duration",
        "-of",
        "json",
        *FFMPEG_INPUT_GUARD,
        f"file:{path}",
    ]
    proc = _run(cmd, path)
    if proc.returncode != 0:
        raise AudioError(
            path, f"unreadable audio (soundfile: {sf_reason}; ffprobe: {_tail(proc.stderr, path)})"
        )
    try:
        meta = json.loads(proc.stdout.decode("utf-8", "replace") or "{}")
    except json.JSONDecodeError:
        raise AudioError(path, "ffprobe printed no usable metadata") from None
    streams = meta.get("streams") or []
    if not streams:
        raise AudioError(path, "no audio stream in the file")
    stream = streams[0]
    try:
        sr = int(stream["sample_rate"])
        channels = int(stream["channels"])
        duration = float(stream.get("duration") or meta.get("format", {}).get("duration") or 0.0)
    except (KeyError, TypeError, ValueError):
        raise AudioError(
            path, "ffprobe reports no sample rate/duration for the audio stream"
        ) from None
    if sr <= 0 or channels <= 0:
        raise AudioError(path, "no decodable audio stream (ffprobe reports no sample rate)")
    frames = round(duration * sr)
    return AudioInfo(duration=frames / sr, sample_rate=sr, channels=channels, frames=frames)
