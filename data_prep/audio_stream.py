"""Reading audio a block at a time, so that a file of any length costs the memory of one block.

:class:`AudioBlockReader` yields a file as consecutive mono float32 blocks at the sample rate
asked for: libsndfile reads the blocks (wav/flac/ogg/mp3, ...), ``ffmpeg`` pipes PCM for
everything else, and :class:`StreamResampler` resamples block by block with the same sinc
kernel as :func:`data_prep.audio.resample_sinc`. :func:`data_prep.audio.load_waveform` stays the
reader of short files; this one serves long recordings (:mod:`pipeline.inference.long_audio`).

A file that breaks off in the middle (a truncated WAV whose header promises more data, a FLAC
that loses sync, ffmpeg failing after some output) first yields every block that decodes, then
raises :class:`AudioTruncated`, which says where the audio stopped. Importing this module does
not import torch.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from data_prep.audio import (
    _FLOAT_SUBTYPES,
    FFMPEG_INPUT_GUARD,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    AudioError,
    _check_file,
    _require,
    _sf_reason,
    _tail,
    reduced_ratio,
    sinc_kernel,
)
from pipeline.limits import LimitError, current_limits

log = logging.getLogger(__name__)

#: Seconds of audio per block a reader yields by default.
BLOCK_S = 2.0
#: WAV data sizes that writers use for "length unknown" (streaming): never a truncation.
_WAV_SIZE_PLACEHOLDERS = (0, 0xFFFFFFFF)
_WAV_SIZE_PLACEHOLDER_FROM = 0x7FFFF000


class AudioTruncated(AudioError):
    """The audio breaks off before its end; everything before ``at_s`` was read.

    Attributes:
        at_s: Seconds of audio that decoded before the damage.
    """

    def __init__(self, path: str | Path, at_s: float, reason: str) -> None:
        self.at_s = at_s
        super().__init__(path, f"truncated or damaged: the audio breaks off after {at_s:.1f} s ({reason})")


class StreamResampler:
    """:func:`data_prep.audio.resample_sinc` for audio that arrives in blocks.

    ``push(block)`` returns the output samples that the input so far determines; ``flush()``
    returns the rest. Together they give ``ceil(N * new / orig)`` samples for N pushed, the
    same as resampling everything at once (up to float32 rounding). Holds at most one kernel
    length (``2 * width + orig`` samples) between calls.

    Args:
        orig_sr: Input rate in Hz.
        new_sr: Output rate in Hz (an awkward ratio is approximated as in
            :func:`data_prep.audio.resample`).
    """

    def __init__(self, orig_sr: int, new_sr: int) -> None:
        self.orig, self.new = reduced_ratio(int(orig_sr), int(new_sr))
        self.kernel, self.width = sinc_kernel(self.orig, self.new)  # (K, new)
        self.pending = np.zeros(self.width, np.float32)  # the left zero padding, then input
        self.samples_in = 0
        self.samples_out = 0

    @property
    def identity(self) -> bool:
        """Whether the rates are equal (blocks pass through unchanged)."""
        return self.orig == self.new

    def push(self, block: np.ndarray) -> np.ndarray:
        """(n,) float32 input -> (m,) float32 output samples now determined."""
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        self.samples_in += block.size
        if self.identity:
            self.samples_out += block.size
            return block
        return self._convolve(np.concatenate([self.pending, block]))

    def flush(self) -> np.ndarray:
        """The remaining output samples, after the right zero padding."""
        if self.identity:
            return np.zeros(0, np.float32)
        out = self._convolve(np.concatenate([self.pending, np.zeros(self.width + self.orig, np.float32)]))
        want = math.ceil(self.new * self.samples_in / self.orig)
        keep = max(0, want - (self.samples_out - out.size))
        self.samples_out -= out.size - min(keep, out.size)
        return out[:keep]

    def _convolve(self, buf: np.ndarray) -> np.ndarray:
        """Outputs of every complete kernel window of ``buf``; keeps the rest for later."""
        k = self.kernel.shape[0]
        if buf.size < k:
            self.pending = buf
            return np.zeros(0, np.float32)
        n = (buf.size - k) // self.orig + 1
        frames = np.lib.stride_tricks.sliding_window_view(buf, k)[:: self.orig][:n]  # (n, K) view
        out = np.concatenate([(frames[i : i + 8192] @ self.kernel).reshape(-1) for i in range(0, n, 8192)])
        self.pending = buf[n * self.orig :].copy()
        self.samples_out += out.size
        return out


def wav_data_sizes(path: str | Path) -> tuple[int, int] | None:
    """(bytes the data chunk declares, bytes the file holds for it) of a RIFF WAVE file.

    None for another format or a header that cannot be walked. libsndfile quietly shortens a
    truncated WAV to what the file holds; this is how the reader tells it was truncated.
    """
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        size = os.fstat(fh.fileno()).st_size
        pos = 12
        for _ in range(64):  # a real header has a handful of chunks before the data
            fh.seek(pos)
            chunk = fh.read(8)
            if len(chunk) < 8:
                return None
            (n,) = struct.unpack("<I", chunk[4:])
            if chunk[:4] == b"data":
                return n, size - pos - 8
            pos += 8 + n + (n & 1)
    return None


class AudioBlockReader:
    """A file as consecutive mono float32 blocks at ``target_sr``, never all of it at once.

    Iterating yields (n,) float32 arrays with values in [-1, 1], n <= :attr:`block_samples`
    (the resampler may add a few samples to a block; :attr:`max_block` records the largest
    block yielded). NaN/inf samples become 0 and out-of-range samples are clipped (one warning
    at the end). Channels are averaged.

    Args:
        path: Any file libsndfile or ffmpeg decodes.
        target_sr: Output sample rate in Hz.
        block_s: Seconds of audio per block.
        max_seconds: The most audio to read, counted as it decodes (None: the run's
            ``max_audio_s``, see :mod:`pipeline.limits`).

    Raises (while iterating):
        AudioError: the file is missing, unreadable or holds no audio (before any block).
        AudioTruncated: the audio breaks off; raised after the last block that decoded.
        LimitError: the audio runs past ``max_seconds``; raised before the block that does.
    """

    def __init__(self, path: str | Path, target_sr: int = 16000, block_s: float = BLOCK_S,
                 max_seconds: float | None = None) -> None:  # fmt: skip
        if int(target_sr) != target_sr or target_sr <= 0:
            raise ValueError(f"target_sr must be a positive integer, got {target_sr!r}")
        self.path = Path(path)
        self.target_sr = int(target_sr)
        self.block_samples = max(1024, int(round(block_s * self.target_sr)))
        self.max_seconds = current_limits().max_audio_s if max_seconds is None else float(max_seconds)
        self.samples = 0  # samples yielded so far (at target_sr)
        self.max_block = 0  # the largest block yielded
        self._bad = self._clipped = 0

    @property
    def seconds(self) -> float:
        """Seconds of audio yielded so far."""
        return self.samples / self.target_sr

    def __iter__(self) -> Iterator[np.ndarray]:
        _check_file(self.path)
        try:
            fh = sf.SoundFile(str(self.path))
        except sf.LibsndfileError as exc:
            yield from self._emit(self._ffmpeg_blocks(_sf_reason(exc)))
        else:
            with fh:
                yield from self._emit(self._soundfile_blocks(fh))
        if self.samples == 0:
            raise AudioError(self.path, "zero-length audio (the file holds no samples)")
        self._warn_sanitized()

    def _emit(self, blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """Sanitises and counts each non-empty block; refuses the audio past ``max_seconds``."""
        most = self.max_seconds * self.target_sr
        try:
            for block in blocks:
                if block.size == 0:
                    continue
                if self.samples + block.size > most:
                    raise LimitError(self.path, f"the audio runs past {self.max_seconds:g} s", "max_audio_s", self.max_seconds)
                block = self._sanitize(block)
                self.samples += block.size
                self.max_block = max(self.max_block, block.size)
                yield block
        finally:
            blocks.close()  # now, not when the error's traceback is freed: ends an ffmpeg child

    def _soundfile_blocks(self, fh: sf.SoundFile) -> Iterator[np.ndarray]:
        """Blocks through libsndfile (then ffmpeg, for a header that declares no samples)."""
        sr = fh.samplerate
        if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
            raise AudioError(self.path, f"implausible sample rate {sr} Hz in the header (is the file corrupt?)")
        if fh.frames == 0:  # a streaming writer's header: ffmpeg reads such a file to its end
            yield from self._ffmpeg_blocks("header declares no samples")
            return
        self._float = fh.subtype in _FLOAT_SUBTYPES
        resampler = StreamResampler(sr, self.target_sr)
        step = max(1024, math.ceil(self.block_samples * sr / self.target_sr))
        read = 0
        while True:
            try:
                data = fh.read(step, dtype="float32", always_2d=True)  # (n, channels), n <= step
            except sf.LibsndfileError as exc:
                if read == 0:  # nothing decodes: ffmpeg may do better, as for a short file
                    yield from self._ffmpeg_blocks(_sf_reason(exc))
                    return
                yield resampler.flush()
                raise AudioTruncated(self.path, read / sr, _sf_reason(exc)) from None
            read += data.shape[0]
            if data.shape[0]:
                yield resampler.push(data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0])
            if data.shape[0] < step:
                break
        yield resampler.flush()
        sample_bytes = _bytes_per_sample(fh.subtype)
        self._check_complete(read, sr, fh.channels * sample_bytes if sample_bytes else None)

    def _check_complete(self, frames_read: int, sr: int, frame_bytes: int | None) -> None:
        """Raises AudioTruncated when a WAV header declares more data than the file holds."""
        sizes = wav_data_sizes(self.path) if frame_bytes else None
        if sizes is None:
            return
        declared, held = sizes
        if declared in _WAV_SIZE_PLACEHOLDERS or declared >= _WAV_SIZE_PLACEHOLDER_FROM or declared <= held:
            return
        declared_s = declared / frame_bytes / sr
        raise AudioTruncated(self.path, frames_read / sr, f"the header declares {declared_s:.1f} s")

    def _ffmpeg_blocks(self, sf_reason: str) -> Iterator[np.ndarray]:
        """Blocks of f32le PCM piped by ffmpeg, which resamples and mixes down itself."""
        self._float = True
        exe = _require("ffmpeg", self.path, sf_reason)
        cmd = [exe, "-nostdin", "-hide_banner", "-v", "error", *FFMPEG_INPUT_GUARD, "-i", f"file:{self.path}",
               "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(self.target_sr), "-f", "f32le", "pipe:1"]  # fmt: skip
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
            try:
                got = 0
                while chunk := proc.stdout.read(4 * self.block_samples):
                    got += len(chunk) // 4
                    yield np.frombuffer(chunk[: len(chunk) // 4 * 4], dtype="<f4").astype(np.float32)
                code = proc.wait()
            finally:
                if proc.poll() is None:  # the consumer stopped early
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
            err.seek(0)
            message = _tail(err.read(), self.path)
        if code == 0:
            return
        if got == 0:
            if "matches no streams" in message:
                raise AudioError(self.path, "no audio stream in the file")
            raise AudioError(self.path, f"cannot decode audio (soundfile: {sf_reason}; ffmpeg: {message})")
        raise AudioTruncated(self.path, got / self.target_sr, f"ffmpeg: {message}")

    def _sanitize(self, block: np.ndarray) -> np.ndarray:
        finite = np.isfinite(block)
        if not finite.all():
            self._bad += int(block.size - np.count_nonzero(finite))
            block = np.where(finite, block, np.float32(0.0)).astype(np.float32)
        if block.size and float(np.abs(block).max()) > 1.0:
            self._clipped += int(np.count_nonzero(np.abs(block) > 1.0))
            block = np.clip(block, -1.0, 1.0)
        return block

    def _warn_sanitized(self) -> None:
        if self._bad:
            log.warning("%s: replaced %d non-finite (NaN/inf) samples with 0", self.path, self._bad)
        if self._clipped and getattr(self, "_float", False):
            log.warning("%s: %d samples outside [-1, 1]; clipped", self.path, self._clipped)


def _bytes_per_sample(subtype: str) -> int | None:
    """Bytes per sample of a PCM/float WAV subtype (None for a compressed one)."""
    return {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}.get(subtype)


__all__ = ["BLOCK_S", "AudioBlockReader", "AudioTruncated", "StreamResampler", "wav_data_sizes"]
