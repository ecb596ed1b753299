"""The resource budget of one ``seqrec`` run: every input is bounded before the work starts.

One place for each limit (torch-free; imports nothing of the project but the error base). Each
limit has a default that serves ordinary jobs and a command-line flag that raises it; a
refusal is one :class:`LimitError` line naming the path and the limit, with the flag to raise
it. The README's "Limits" section lists the same table (``tests/test_limits.py`` checks it).

A run reads the limits in force with :func:`current_limits`; the CLI sets them once with
:func:`use_limits` from its flags, and the Python API keeps the defaults unless a caller sets
others the same way.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputError, SeqrecError

GiB, MiB = 1 << 30, 1 << 20


@dataclass(frozen=True)
class Limits:
    """What one run may read, allocate and write (see the module docstring).

    Attributes:
        max_lm_bytes: Bytes read from a word-LM file (after gzip decompression).
        max_line_bytes: Bytes in one line of an LM or lexicon file.
        max_lexicon_words: Entries in a lexicon (a bundle's, plus hotwords).
        max_params: Parameters a model config implies, counted before anything is allocated.
        max_beam: Beam width of the word-LM or character beam search.
        max_windows: Sliding windows ``seqrec label --window`` makes for one video.
        max_stdin_bytes: Bytes copied from standard input to the temporary directory.
        max_audio_s: Seconds of audio in one input, counted while decoding (not from its header).
    """

    max_lm_bytes: int = 2 * GiB
    max_line_bytes: int = 1 * MiB
    max_lexicon_words: int = 2_000_000
    max_params: int = 200_000_000
    max_beam: int = 1024
    max_windows: int = 100_000
    max_stdin_bytes: int = 4 * GiB
    max_audio_s: float = 24 * 3600.0

    def raised(self, **changes: float | None) -> Limits:
        """A copy with the given limits changed (``None`` keeps the current value)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


#: ``Limits`` field -> (command-line flag, what it bounds, unit); the CLI builds its flags from
#: this table, and the error messages name the flag.
FLAGS: dict[str, tuple[str, str]] = {
    "max_lm_bytes": ("--max-lm-bytes", "bytes read from a word-LM file, after decompression"),
    "max_line_bytes": ("--max-line-bytes", "bytes in one line of an LM or lexicon file"),
    "max_lexicon_words": ("--max-lexicon-words", "words in a lexicon"),
    "max_params": ("--max-params", "parameters a bundle's model config implies"),
    "max_beam": ("--max-beam", "beam width (--beam-size, or a bundle's lm.beam_size)"),
    "max_windows": ("--max-windows", "sliding windows of --window/--stride in one video"),
    "max_stdin_bytes": ("--max-stdin-bytes", "bytes read from standard input ('-')"),
    "max_audio_s": ("--max-audio-duration", "seconds of audio in one input, counted while decoding"),
}


class LimitError(SeqrecError, ValueError):
    """An input exceeds a limit of the run; the message names the path, the limit and its flag."""

    def __init__(self, path: str | Path, what: str, field: str, limit: float) -> None:
        self.path, self.field, self.limit = str(path), field, limit
        flag = FLAGS[field][0]
        shown = f"{limit:g}" if isinstance(limit, float) else f"{limit:,}"
        super().__init__(f"{self.path}: {what}: over the limit of {shown} ({flag} raises it)")


_CURRENT: contextvars.ContextVar[Limits | None] = contextvars.ContextVar("seqrec_limits", default=None)


def current_limits() -> Limits:
    """The limits in force in this context (the defaults unless :func:`use_limits` set others)."""
    return _CURRENT.get() or Limits()


@contextlib.contextmanager
def use_limits(limits: Limits) -> Iterator[Limits]:
    """Puts ``limits`` in force for the code run inside the ``with`` block (this thread)."""
    token = _CURRENT.set(limits)
    try:
        yield limits
    finally:
        _CURRENT.reset(token)


def check_regular_file(path: str | Path, what: str = "file") -> os.stat_result:
    """``stat`` of ``path``, checked to be a regular file before anything opens it.

    A FIFO, socket or device would block or never end when read (``/dev/zero``, a named pipe), so
    it is refused from its ``stat`` alone. Symbolic links are followed: a link to a regular file
    is fine.

    Raises:
        InputError: the path is missing, unreadable or not a regular file.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(path, f"no such {what}") from None
    except OSError as exc:
        raise InputError(path, f"cannot read {what}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(path, f"is a directory, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(path, f"not a regular file (a pipe, socket or device); a {what} must be one")
    return st

