"""Shared helpers for the inference front ends (paths, errors, threads)."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.limits import check_regular_file

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
    from data_prep.vad import SileroDetector, VADError

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
    from data_prep.vad import SileroDetector, VADError

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
    from data_prep.audio import audio_info

    try:
        return Path(path).is_file() and audio_info(path).duration > seconds
    except Exception:  # any unreadable header goes the usual way
        return False
