"""seqrec's error base and its one-line formatter (torch-free; imports nothing of the project).

Every error that seqrec raises for a user (bad input files, configs, bundles, corpora, LMs)
derives from :class:`SeqrecError`, besides the built-in class it has always been (``ValueError``
for bad values, ``RuntimeError`` for failed steps), so ``except ValueError`` keeps working. Its
message names the file or key and the problem on the first line; :func:`one_line` is how the
command line and the recipes show it.
"""

from __future__ import annotations

import reprlib
from pathlib import Path


class SeqrecError(Exception):
    """Base of the errors written for users; the first line of the message says it all."""


class InputError(SeqrecError, ValueError):
    """An input path cannot be used (missing, not a regular file, a directory with no media);
    the message is ``<path>: <reason>``."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{self.path}: {self.reason}")


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an error's message, or its class name when it has none.

    >>> one_line(ValueError("a.wav: not audio\\n  details"))
    'a.wav: not audio'
    """
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def shown(value: object, width: int = 80) -> str:
    """``repr(value)`` cut to at most ``width`` characters, for echoing untrusted values.

    A config value quoted in an error message may be a megabyte string or a huge nested list;
    this shows its beginning only, and never builds the whole ``repr`` first.

    >>> shown("x" * 1000, 12)
    "'xxx...xxxx'"
    """
    r = reprlib.Repr()
    r.maxstring = r.maxother = r.maxlong = width
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict, r.maxset = 3, 4, 4, 4, 4
    try:
        text = r.repr(value)
    except ValueError:  # an int past Python's digit limit for str()
        text = f"<an integer of about {int(value.bit_length() * 0.30103):,} digits>"  # type: ignore[attr-defined]
    return text if len(text) <= width else text[: width - 3] + "..."
