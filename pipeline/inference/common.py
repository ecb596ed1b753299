"""Shared helpers for the inference front ends (paths, errors, threads)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.vad import SileroDetector, VADError
from pipeline.errors import InputError
from pipeline.limits import LimitError, check_regular_file, current_limits

log = logging.getLogger(__name__)

#: A file none of whose 32 ms frames reaches this speech probability holds no speech (Silero's
#: own threshold; long files use the same one to find speech, see ``ChunkConfig``).
SPEECH_THRESHOLD = 0.5

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".wma", ".aiff", ".aif", ".webm"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
#: What ``transcribe`` finds in a directory: audio files, and video containers for their audio
#: track (a file named on the command line is read whatever its extension).
TRANSCRIBE_EXTENSIONS = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS


def expand_paths(paths: Iterable[str | Path], extensions: frozenset[str]) -> list[Path]:
    """Expands directories (recursively, sorted) into files with the given extensions.

    Explicit file paths are kept as given, whatever their extension, so that a bad file
    named on the command line gets its own error rather than being silently skipped. A
    directory that holds no such file is kept as itself, so that :func:`check_input` reports
    it instead of the run silently doing nothing.
    """
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in extensions)
            out.extend(found or [path])
        else:
            out.append(path)
    return out


def check_input(path: Path, extensions: frozenset[str], what: str) -> None:
    """Raises :class:`InputError` for an input that is a directory (one with no ``what`` files)."""
    if path.is_dir():
        raise InputError(
            path, f"directory holds no {what} files (extensions {', '.join(sorted(extensions))})"
        )


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity on Linux, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def check_media_path(path: Path, extensions: frozenset[str], what: str) -> None:
    """Checks an input from its ``stat`` alone, before anything opens it.

    A FIFO, socket or device (``/dev/zero``, a named pipe) would block or never end when read;
    a missing path or a directory without ``what`` files cannot be read either.

    Raises:
        InputError: a directory with no ``what`` files, a missing path ("file not found", as
            the readers say), or anything but a regular file.
    """
    check_input(path, extensions, what)
    if not os.path.lexists(path):
        raise InputError(path, "file not found")
    check_regular_file(path, "media file")


def bundle_section(config: dict[str, Any], key: str, kind: type = dict) -> Any:
    """``config[key]``, checked to be a ``kind`` (a bundle config is untrusted data).

    Raises:
        ValueError: the key is missing or holds the wrong kind of value.
    """
    value = config.get(key)
    if not isinstance(value, kind):
        raise ValueError(f"config.yaml: '{key}' must be a {kind.__name__}, got {type(value).__name__}")
    return value


def has_speech(wave: np.ndarray, sample_rate: int) -> bool:
    """Whether Silero VAD hears speech anywhere in a (N,) float32 waveform of a short file.

    A model decodes noise or silence into words, as any CTC model does: files with no frame
    at :data:`SPEECH_THRESHOLD` or above get an empty transcript instead of being decoded.
    Returns True (decode as usual) when it cannot tell: audio not at 16 kHz, or the VAD
    package missing or altered (logged once).
    """
    if sample_rate != SileroDetector.sample_rate:
        return True
    try:
        detector = SileroDetector()
    except VADError as exc:
        _warn_no_vad(str(exc))
        return True
    probs = np.concatenate([detector.push(np.asarray(wave, np.float32)), detector.finish()])
    return probs.size == 0 or float(probs.max()) >= SPEECH_THRESHOLD


def warm_vad() -> None:
    """Loads the voice activity detector's session now (it is cached per process), so that a
    loader thread can overlap it with other start-up work; a missing VAD is reported later."""
    with contextlib.suppress(VADError):
        SileroDetector()


@functools.lru_cache(maxsize=1)
def _warn_no_vad(reason: str) -> None:
    log.warning("no voice activity detector (%s): files without speech are decoded too", reason)


def longer_than(path: Path, seconds: float) -> bool:
    """Whether an audio file lasts more than ``seconds`` by its header (False if unreadable:
    the whole-file path then reports why; a header that understates is caught while reading)."""
    if math.isinf(seconds):
        return False
    # lazy: data_prep.audio pulls in soundfile; seqrec --help reaches this module
    from data_prep.audio import audio_info

    try:
        return Path(path).is_file() and audio_info(path).duration > seconds
    except Exception:  # any unreadable header goes the usual way
        return False


# --------------------------------------------------------------------------- numpy inputs


@dataclasses.dataclass(frozen=True, eq=False)
class ArrayInput:
    """A waveform given to ``transcribe`` as a numpy array instead of a file.

    Attributes:
        name: What its result's ``path`` says: ``"<array i>"``, ``i`` its index in the inputs.
        samples: The array as given (checked by :func:`array_waveform` when it is read).
    """

    name: str
    samples: np.ndarray

    def __str__(self) -> str:
        return self.name


#: An input of ``transcribe``: a file or directory path, or a waveform.
MediaInput = Path | ArrayInput


def expand_inputs(items: Any, extensions: frozenset[str]) -> list[MediaInput]:
    """:func:`expand_paths` that also takes numpy arrays among the inputs.

    Args:
        items: A path, a numpy array (one waveform), or a list of either.
        extensions: Of the files a directory is searched for.

    Returns:
        Paths (directories expanded) and :class:`ArrayInput` s, in input order.
    """
    if isinstance(items, (str, Path, np.ndarray)):
        items = [items]
    out: list[MediaInput] = []
    for i, item in enumerate(items):
        if isinstance(item, np.ndarray):
            out.append(ArrayInput(f"<array {i}>", item))
        else:
            out.extend(expand_paths([item], extensions))
    return out


def check_sample_rate(sample_rate: Any) -> int:
    """``sample_rate=`` of ``transcribe``: an integer number of Hz in the range files may have.

    Raises:
        ValueError: anything else (a caller's mistake: raised at once, not per input).
    """
    # lazy: data_prep.audio pulls in soundfile; seqrec --help reaches this module
    from data_prep.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise ValueError(f"sample_rate must be an integer number of Hz, got {sample_rate!r}")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"sample_rate must be {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz, got {sample_rate}")
    return int(sample_rate)


def array_seconds(item: ArrayInput, sample_rate: int) -> float:
    """Seconds of a waveform array by its shape (0.0 for a shape it will refuse)."""
    shape = getattr(item.samples, "shape", ())
    return shape[0] / sample_rate if len(shape) in (1, 2) else 0.0


def array_waveform(item: ArrayInput, sample_rate: int, target_sr: int, *, backend: str = "numpy") -> np.ndarray:
    """A waveform array as the engines read files: mono float32 at ``target_sr`` in [-1, 1].

    Args:
        item: Its ``samples``: (N,) or (N, C) floating-point samples (float16/32/64), nominally
            in [-1, 1]; channels are averaged. Values past +-1 are clipped, with a warning.
        sample_rate: The samples' rate in Hz (checked by :func:`check_sample_rate`).
        target_sr: The model's rate; other rates are resampled with
            :func:`data_prep.audio.resample` (``backend``: ``"numpy"``, its numpy sinc port, or
            ``"torch"``, torchaudio's, as ``load_waveform`` reads files for each engine).

    Returns:
        (M,) float32.

    Raises:
        InputError: not a floating-point array, not 1-D or 2-D, more channels than samples
            (channels first: pass ``array.T``), no samples, or a NaN or infinite sample.
        LimitError: longer than the run's ``max_audio_s``.
    """
    # lazy: data_prep.audio pulls in soundfile; seqrec --help reaches this module
    from data_prep.audio import resample

    name, x = item.name, item.samples
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(name, f"expected float samples in [-1, 1], got dtype {x.dtype} (integer PCM: divide by its full scale)")
    if x.ndim not in (1, 2):
        raise InputError(name, f"expected shape (samples,) or (samples, channels), got {x.shape}")
    if x.ndim == 2 and x.shape[1] > x.shape[0]:
        raise InputError(name, f"shape {x.shape} has more channels than samples: channels first? pass array.T")
    if x.shape[0] == 0 or x.size == 0:
        raise InputError(name, "no audio samples (empty array)")
    if not np.isfinite(x).all():
        raise InputError(name, f"{x.size - int(np.isfinite(x).sum())} samples are NaN or infinite")
    limit = current_limits().max_audio_s
    if x.shape[0] / sample_rate > limit:
        raise LimitError(name, f"the audio runs past {limit:g} s", "max_audio_s", limit)
    wave = (x.mean(axis=1, dtype=np.float64) if x.ndim == 2 else x).astype(np.float32)
    peak = float(np.abs(wave).max())
    if peak > 1.0:
        log.warning("%s: samples reach %.3g, outside [-1, 1]; clipping", name, peak)
        wave = np.clip(wave, -1.0, 1.0)
    if sample_rate != target_sr:
        if backend == "torch":
            # lazy: torch only for tensor input; the torch-free engine reads input through this module
            import torch

            wave = resample(torch.from_numpy(wave), sample_rate, target_sr).numpy()
        else:
            wave = resample(wave, sample_rate, target_sr)
        wave = np.clip(wave, -1.0, 1.0)
    return np.ascontiguousarray(wave, dtype=np.float32)


@dataclasses.dataclass
class LongInput:
    """An input past the whole-input limit, for the block-wise path: ``samples`` holds an
    array's waveform (at the model's rate), None for a file (read again a block at a time)."""

    samples: np.ndarray | None = None


def read_input(item: Path | ArrayInput, sample_rate: int, target_sr: int, long_s: float, *,
               backend: str) -> np.ndarray | LongInput:  # fmt: skip
    """One transcription input as both engines read it: checked before anything opens it,
    then its (N,) float32 waveform at ``target_sr``, or :class:`LongInput` when it lasts more
    than ``long_s`` seconds (an array by its length, a file by its header or, when the header
    understates, as it is read).

    Args:
        item: A path (from :func:`expand_inputs`) or an :class:`ArrayInput`.
        sample_rate: The rate of an array's samples.
        target_sr: The model's rate.
        long_s: The longest input read whole.
        backend: The resampler (see :func:`data_prep.audio.load_waveform`).

    Raises:
        InputError, AudioError, LimitError, ValueError: the input cannot be used (one line
            naming it): not a regular media file, unreadable, past a limit, no samples.
    """
    # lazy: data_prep.audio pulls in soundfile; seqrec --help reaches this module
    from data_prep.audio import AudioTooLong, load_waveform

    if isinstance(item, ArrayInput):
        wave = array_waveform(item, sample_rate, target_sr, backend=backend)
        if wave.size > long_s * target_sr:
            return LongInput(wave)
    else:
        check_media_path(item, TRANSCRIBE_EXTENSIONS, "audio")
        if longer_than(item, long_s):
            return LongInput()
        try:
            wave = load_waveform(item, target_sr=target_sr, backend=backend, max_seconds=long_s)
        except AudioTooLong:  # its header said less
            log.debug("%s: longer than its header says; reading it as a long file", item)
            return LongInput()
    if wave.size == 0:
        raise ValueError(f"{item}: no audio samples")
    return wave
