"""Atomic file writes and stage markers shared by stores, checkpoints and bundles.

Every write goes to a temporary file in the destination directory, is flushed and fsynced,
and is then renamed over the target. A reader therefore sees the old file or the new one,
never a half-written one; a failed write (disk full, kill) leaves the old file intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Opens a temporary sibling of ``path`` for writing; renames it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Writes ``obj`` as indented JSON atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save(path: str | Path, writer: Callable[[IO[bytes]], None]) -> None:
    """Calls ``writer(fh)`` on a temporary file and renames it over ``path``."""
    with atomic_open(path, "wb") as fh:
        writer(fh)


def marker_matches(marker: str | Path, config_hash: str) -> bool:
    """True when a ``.done`` marker exists and records ``config_hash``."""
    marker = Path(marker)
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("config_hash") == config_hash


def write_marker(marker: str | Path, config_hash: str, **extra: Any) -> None:
    """Writes a ``.done`` marker recording the config hash (written last, atomically)."""
    atomic_write_json(marker, {"config_hash": config_hash, **extra})
