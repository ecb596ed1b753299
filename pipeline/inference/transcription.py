"""The per-file result of both speech engines (torch :class:`Transcriber` and lite)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.inference.subtitles import segments


@dataclass
class Transcription:
    """Result for one file; ``error`` is set (and ``text`` empty) when the file failed.

    ``partial``: the audio broke off (a truncated or damaged long recording): ``text``,
    ``words`` and ``duration`` cover the audio before the damage and ``error`` names it.
    """

    path: str
    text: str = ""
    duration: float = 0.0
    words: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    partial: bool = False
    #: The exception behind ``error`` (for tracebacks with ``seqrec --debug``); not serialised.
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """``{"path", "text", "duration", "words", "segments"}`` (the segments of srt and vtt, each
        with its words), or ``{"path", "error"}`` for a failed file;
        a partial result has both (``text``... and ``error``)."""
        if self.error is not None and not self.partial:
            return {"path": self.path, "error": self.error}

        row = {"path": self.path, "text": self.text, "duration": round(self.duration, 3), "words": self.words,
               "segments": segments(self.words)}  # fmt: skip
        return row if self.error is None else {**row, "error": self.error}
