"""Shared helpers for the inference front ends (paths, errors, threads)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".wma", ".aiff", ".aif", ".webm"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})


def expand_paths(paths: Iterable[str | Path], extensions: frozenset[str]) -> list[Path]:
    """Expands directories (recursively, sorted) into files with the given extensions.

    Explicit file paths are kept as given, whatever their extension, so that a bad file
    named on the command line gets its own error rather than being silently skipped.
    """
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in extensions)
            if not found:
                log.warning("%s: directory holds no files with extensions %s", path, sorted(extensions))
            out.extend(found)
        else:
            out.append(path)
    return out


def one_line(exc: BaseException) -> str:
    """A single-line description of an error for per-file reports."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
