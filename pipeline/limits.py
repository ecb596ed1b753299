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
import itertools
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pipeline.errors import InputError, SeqrecError

GiB, MiB = 1 << 30, 1 << 20


@dataclass(frozen=True)
class Limits:
    """What one run may read, allocate and write (see the module docstring).

    Attributes:
        max_lm_bytes: Bytes read from a word-LM file (after gzip decompression) or its lexicon.
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
    max_stdin_bytes: int = 512 * MiB
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


def bounded_lines(
    fh: BinaryIO, path: str | Path, what: str, *, total: str | None = "max_lm_bytes", count: str | None = None
) -> Iterator[str]:
    """The lines of a binary file as UTF-8 text (without their ``\\n``), read within the limits.

    The file is read in blocks of at most ``max_line_bytes`` (and 256 kB), and a line still open
    at the end of a block is kept only up to ``max_line_bytes``: a file with no newline (a gzip
    bomb of zeros, a sparse file) costs one line limit of memory, not its size.

    Args:
        fh: A binary file object (a plain file, or a ``gzip.GzipFile`` reading through the gzip).
        path: Named in the errors.
        what: What the file is, for the errors (``"language model"``, ``"lexicon"``).
        total: The :class:`Limits` field that bounds the bytes read in all (None: unbounded).
        count: The :class:`Limits` field that bounds the number of lines (None: unbounded).

    Raises:
        LimitError: a line is longer than ``max_line_bytes`` (its newline not counted), or the
            file is past ``total`` bytes or ``count`` lines; raised as soon as that is known.
        UnicodeDecodeError: the text is not UTF-8.
    """
    return itertools.chain.from_iterable(_line_blocks(fh, path, what, total, count))


def _line_blocks(fh: BinaryIO, path: str | Path, what: str, total: str | None, count: str | None) -> Iterator[list[str]]:
    limits = current_limits()
    max_line = limits.max_line_bytes
    max_total = getattr(limits, total) if total else None
    max_count = getattr(limits, count) if count else None
    block = max(1, min(max_line + 1, 256 << 10))
    carry: list[bytes] = []  # the open line, in pieces
    carried = read = lines = 0

    def too_long() -> LimitError:
        return LimitError(path, f"line {lines + 1:,} of the {what} is too long", "max_line_bytes", max_line)

    while True:
        chunk = fh.read(block)
        if not chunk:
            break
        read += len(chunk)
        if max_total is not None and read > max_total:
            raise LimitError(path, f"the {what} holds more bytes than allowed", total, max_total)
        cut = chunk.rfind(b"\n")
        if cut < 0:
            carried += len(chunk)
            if carried > max_line:
                raise too_long()
            carry.append(chunk)
            continue
        if carried + chunk.find(b"\n") > max_line:  # lines inside one block are shorter than it
            raise too_long()
        text = b"".join([*carry, chunk[: cut + 1]]).decode("utf-8")
        carry, carried = [chunk[cut + 1 :]], len(chunk) - cut - 1
        done = text.split("\n")
        done.pop()  # the empty string after the block's last newline
        lines += len(done)
        if max_count is not None and lines > max_count:
            raise LimitError(path, f"the {what} has more lines than allowed", count, max_count)
        yield done
    if carried:
        lines += 1
        if max_count is not None and lines > max_count:
            raise LimitError(path, f"the {what} has more lines than allowed", count, max_count)
        yield [b"".join(carry).decode("utf-8")]


def check_beam(beam: int, where: str | Path, what: str = "beam_size") -> int:
    """``beam``, checked against ``max_beam`` (a flashlight beam allocates per hypothesis up front).

    Raises:
        LimitError: the beam is wider than the limit; the message names ``where`` and ``what``.
    """
    limit = current_limits().max_beam
    if beam > limit:
        raise LimitError(where, f"{what} {beam} is a wider beam than allowed", "max_beam", limit)
    return beam
