"""Atomic file writes and stage markers shared by stores, checkpoints and bundles.

Every write goes to a temporary file in the destination directory, is flushed and fsynced,
and is then renamed over the target. A reader therefore sees the old file or the new one,
never a half-written one; a failed write (disk full, kill) leaves the old file intact.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import stat
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
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_FILE_SUFFIX, dir=path.parent)
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


#: The token in every temporary name seqrec makes; a name without it is never cleaned up.
TEMP_TOKEN = "seqrec-tmp"
#: The suffixes of seqrec's temporary files and directories (:func:`temp_prefix`).
TEMP_FILE_SUFFIX, TEMP_DIR_SUFFIX = ".tmp", ".tmpdir"
#: The file every temporary directory holds from its creation until it is renamed into place.
TEMP_DIR_MARKER = ".seqrec-partial"


def temp_prefix(path: str | Path) -> str:
    """The name prefix of temporary siblings of ``path``: ``.<name>.seqrec-tmp-<pid>@<host>.``.

    ``tempfile.mkstemp``/``mkdtemp`` add 8 random characters and the suffix
    (:data:`TEMP_FILE_SUFFIX` or :data:`TEMP_DIR_SUFFIX`). The owner's pid and host let
    :func:`remove_stale_temps` tell an abandoned temporary (its process is gone) from one
    another process is writing right now.
    """
    return f".{Path(path).name}.{TEMP_TOKEN}-{os.getpid()}@{_host_tag()}."


def make_temp_dir(path: str | Path) -> Path:
    """A new temporary sibling directory of ``path`` (to be renamed over it when complete).

    It holds :data:`TEMP_DIR_MARKER` from the start, which :func:`remove_stale_temps` requires
    before it removes an abandoned one; call :func:`seal_temp_dir` before the rename.
    """
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(path), suffix=TEMP_DIR_SUFFIX, dir=path.parent))
    (tmp / TEMP_DIR_MARKER).touch()
    return tmp


def seal_temp_dir(tmp: str | Path) -> None:
    """Removes the marker of a temporary directory from :func:`make_temp_dir` before its rename."""
    Path(tmp, TEMP_DIR_MARKER).unlink(missing_ok=True)


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


def _stale_pattern(name: str) -> re.Pattern[str]:
    suffixes = "|".join(re.escape(x) for x in (TEMP_FILE_SUFFIX, TEMP_DIR_SUFFIX))
    return re.compile(
        rf"^\.(?:{name})\.{TEMP_TOKEN}-(\d+)@([A-Za-z0-9-]+)\.[a-z0-9_]{{8}}({suffixes})$"
    )


def remove_stale_temps(path: str | Path, *, whole_dir: bool = False) -> list[Path]:
    """Removes temporaries that this program made and whose writer on this host is dead.

    Only what seqrec itself created is ever removed: an entry must carry the whole name
    :func:`temp_prefix` gives (with :data:`TEMP_TOKEN`, 8 random characters and seqrec's
    suffix), belong to this user, name a dead process on this host, and be either a regular
    file ending in :data:`TEMP_FILE_SUFFIX` or a directory ending in :data:`TEMP_DIR_SUFFIX`
    that still holds :data:`TEMP_DIR_MARKER` and nothing but regular files. Anything else that
    looks alike (a user's ``.notes.999@host.bak``, a folder with sub-folders, a symlink) stays.

    Args:
        path: The target whose temporaries are cleared.
        whole_dir: Clear abandoned temporaries of every target in ``path``'s directory.

    Returns:
        The paths removed.
    """
    path = Path(path)
    pattern = _stale_pattern(r".+" if whole_dir else re.escape(path.name))
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
            if _remove_own_temp(sib, is_dir=m.group(3) == TEMP_DIR_SUFFIX):
                removed.append(sib)
    if removed:
        log.info("removed %d temporary file(s) left by killed writers in %s", len(removed), path.parent)
    return removed


def _remove_own_temp(entry: Path, *, is_dir: bool) -> bool:
    """Removes one abandoned temporary if it has the shape seqrec gives it; True if removed."""
    st = entry.lstat()
    if st.st_uid != os.getuid():
        return False
    if not is_dir:
        if not stat.S_ISREG(st.st_mode):
            return False
        entry.unlink()
        return True
    if not stat.S_ISDIR(st.st_mode):
        return False
    children = list(entry.iterdir())
    names = {c.name for c in children}
    if TEMP_DIR_MARKER not in names or not all(stat.S_ISREG(c.lstat().st_mode) for c in children):
        return False
    for child in children:
        child.unlink()
    entry.rmdir()
    return True


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
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def user_cache_dir(env: str, *parts: str) -> Path | None:
    """A cache folder kept across runs: ``$<env>`` when set (``""`` or ``"0"``: caching off,
    None), else ``$XDG_CACHE_HOME/seqrec/<parts...>`` (``~/.cache`` without XDG)."""
    root = os.environ.get(env)
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "seqrec", *parts)
    return None if root in ("", "0") else Path(root)
