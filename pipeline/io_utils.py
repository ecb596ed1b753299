"""Atomic file writes and stage markers shared by stores, checkpoints and bundles.

Every write goes to a temporary file in the destination directory, is flushed and fsynced,
and is then renamed over the target. A reader therefore sees the old file or the new one,
never a half-written one; a failed write (disk full, kill) leaves the old file intact.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Opens a temporary sibling of ``path`` for writing; renames it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched. A process killed
    outright (SIGKILL) leaves its temporary behind, named by :func:`temp_prefix`;
    :func:`remove_stale_temps` clears such leftovers.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"


def temp_prefix(path: str | Path) -> str:
    """The name prefix of temporary siblings of ``path``: ``.<name>.<pid>@<host>.``.

    The owner's pid and host let :func:`remove_stale_temps` tell an abandoned temporary
    (its process is gone) from one another process is writing right now.
    """
    return f".{Path(path).name}.{os.getpid()}@{_host_tag()}."


@contextlib.contextmanager
def exclusive_lock(lock_file: str | Path, busy: Callable[[str], Exception]) -> Iterator[None]:
    """Holds an exclusive, non-blocking ``flock`` on ``lock_file`` (created if needed).

    The holder writes ``pid <n> on <host>`` into the file. The kernel drops the lock when its
    process dies, however it dies, so a file left by a killed run is simply taken over.

    Args:
        lock_file: The lock file.
        busy: Builds the exception raised at once when another process holds the lock, from the
            holder's description (``"pid 123 on host-a"``, or ``"unknown"``).
    """
    import errno
    import fcntl

    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 128, 0).decode(errors="replace").strip() or "unknown"
            raise busy(holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(path: str | Path, *, whole_dir: bool = False) -> list[Path]:
    """Removes temporaries (files or directories) whose writer on this host is dead.

    Args:
        path: The target whose temporaries (named by :func:`temp_prefix`) are cleared.
        whole_dir: Clear abandoned temporaries of every target in ``path``'s directory.

    Returns:
        The paths removed.
    """
    path = Path(path)
    name = r".+" if whole_dir else re.escape(path.name)
    pattern = re.compile(rf"^\.{name}\.(\d+)@([A-Za-z0-9-]+)\.")
    host = _host_tag()
    removed: list[Path] = []
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return removed
    for sib in siblings:
        m = pattern.match(sib.name)
        if m is None or m.group(2) != host:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _pid_alive(pid):
            continue
        with contextlib.suppress(OSError):
            if sib.is_dir() and not sib.is_symlink():
                shutil.rmtree(sib)
            else:
                sib.unlink()
            removed.append(sib)
    if removed:
        log.info("removed %d temporary file(s) left by killed writers in %s", len(removed), path.parent)
    return removed


def fsync_dir(path: str | Path) -> None:
    """Flushes a directory entry change (a rename) to disk; best effort."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    # Linux reports it without changing it (os.umask would race with other threads).
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
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


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
