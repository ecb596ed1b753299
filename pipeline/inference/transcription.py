"""The per-file result of both speech engines (torch :class:`Transcriber` and lite)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Transcription:
    """Result for one file; ``error`` is set (and ``text`` empty) when the file failed."""

    path: str
    text: str = ""
    duration: float = 0.0
    words: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    #: The exception behind ``error`` (for tracebacks with ``seqrec --debug``); not serialised.
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """``{"path", "text", "duration", "words"}``, or ``{"path", "error"}`` for a failed file."""
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        return {"path": self.path, "text": self.text, "duration": round(self.duration, 3), "words": self.words}
