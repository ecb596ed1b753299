r"""Escaping of untrusted text (file names, class names, error messages) in line-based output.

A Linux file name may hold any byte but ``/`` and NUL: tabs, newlines, terminal escape
sequences. Printed as it is in a tab-separated row or an error line, such a name splits the
row or forges another one. Every line format of ``seqrec`` (txt, tsv, srt, vtt, the
``seqrec: error:`` lines) shows such text through :func:`escape`:

* ``\`` becomes ``\\``; tab, newline and carriage return become ``\t``, ``\n``, ``\r``;
* any other character that is not printable (``str.isprintable``: control characters, line
  and paragraph separators, format characters such as U+202E, spaces other than the plain
  space) becomes ``\xNN`` below U+0080, ``\uNNNN`` up to U+FFFF, ``\UNNNNNNNN`` above;
* a byte that is not valid UTF-8 in a file name (which Python keeps as a lone surrogate,
  U+DC80..U+DCFF) becomes ``\xNN``, NN being the byte: so ``\xNN`` always names a byte and
  ``\uNNNN`` a character;
* everything else, printable non-ASCII letters included, stays as it is.

The mapping is reversible (:func:`unescape`), and the escaped text never contains a tab, a
newline or any other character that a reader might split a line on. JSON output needs none of
this: JSON escapes control characters itself.

This module imports nothing of the project.
"""

from __future__ import annotations

import logging
import re

_NAMED = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNNAMED = {v[1]: k for k, v in _NAMED.items()}
_ESCAPE = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([\\tnr]))")
_SURROGATE = re.compile("[\ud800-\udfff]")


def escape(text: str) -> str:
    """``text`` with backslashes and non-printable characters escaped (see the module doc).

    >>> escape("y.wav\\tforged\\nz.wav")
    'y.wav\\\\tforged\\\\nz.wav'
    """
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for ch in text:
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            if code < 0x80 or 0xDC80 <= code <= 0xDCFF:  # an ASCII control, or an undecodable byte
                out.append(f"\\x{code & 0xFF:02x}")
            elif code <= 0xFFFF:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    return "".join(out)


def unescape(text: str) -> str:
    """The inverse of :func:`escape`: ``unescape(escape(s)) == s`` for every string ``s``.

    A ``\\xNN`` of 80 or more gives back the undecodable byte as Python holds it in a file name
    (``os.fsencode`` of the result gives the original bytes).
    """

    def one(m: re.Match[str]) -> str:
        byte, bmp, wide, named = m.groups()
        if byte is not None:
            code = int(byte, 16)
            return chr(code if code < 0x80 else 0xDC00 + code)
        if named is not None:
            return _UNNAMED[named]
        return chr(int(bmp or wide, 16))

    return _ESCAPE.sub(one, text)


def json_safe(text: str) -> str:
    """A JSON text with each lone surrogate (an undecodable byte of a file name) written as a
    ``\\uDCNN`` escape, which ``json.loads`` reads back; any other text is returned as it is.

    ``json.dumps(..., ensure_ascii=False)`` keeps lone surrogates, which no UTF-8 stream can
    carry.
    """
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class EscapingFormatter(logging.Formatter):
    """A log formatter that escapes each message (a warning naming a file cannot forge a line);
    a traceback appended under ``--debug`` keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = escape(record.message)
        return super().formatMessage(record)
