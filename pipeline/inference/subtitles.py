"""Subtitle and table outputs of a transcription: segments from word timestamps, SRT, WebVTT, TSV.

A *segment* is a run of words shown together: a new one starts after a pause, or when the
line would grow past ``max_chars`` characters or ``max_duration_s`` seconds (the usual
limits of subtitle guidelines: about 42 characters a line, a few seconds on screen). The file
shapes follow Whisper's writers: SRT and WebVTT cues with ``HH:MM:SS,mmm`` / ``HH:MM:SS.mmm``
times, and TSV with a ``start end text`` header and integer milliseconds.

Cue and row texts are escaped by :func:`pipeline.escaping.escape`, so a word holding a
control character (a bundle's tokens and an LM's words are data) cannot split a cue or a row;
WebVTT texts also get ``&amp;``, ``&lt;`` and ``&gt;`` for ``&``, ``<`` and ``>``, which that
format reads as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.escaping import escape

#: Output formats of ``seqrec transcribe`` besides txt and json.
SUBTITLE_FORMATS = ("srt", "vtt", "tsv")


def segments(
    words: Sequence[dict[str, Any]], *, max_chars: int = 42, max_gap_s: float = 0.8, max_duration_s: float = 6.0
) -> list[dict[str, Any]]:
    """Groups timed words into segments.

    Args:
        words: ``[{"word", "start", "end"}, ...]`` in time order (seconds).
        max_chars: Longest segment text; a single longer word is a segment on its own.
        max_gap_s: A pause at least this long between two words starts a new segment.
        max_duration_s: Longest segment on screen.

    Returns:
        ``[{"start", "end", "text", "words"}, ...]``, ``words`` the segment's own.
    """
    out: list[dict[str, Any]] = []
    cur: list[dict[str, Any]] = []
    for w in words:
        if cur:
            text = " ".join(x["word"] for x in cur)
            if (
                w["start"] - cur[-1]["end"] >= max_gap_s
                or len(text) + 1 + len(w["word"]) > max_chars
                or w["end"] - cur[0]["start"] > max_duration_s
            ):
                out.append({"start": cur[0]["start"], "end": cur[-1]["end"], "text": text, "words": cur})
                cur = []
        cur.append(w)
    if cur:
        out.append({"start": cur[0]["start"], "end": cur[-1]["end"], "text": " ".join(x["word"] for x in cur),
                    "words": cur})  # fmt: skip
    return out


def _clock(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_srt(segs: Sequence[dict[str, Any]]) -> str:
    """SubRip: numbered cues ``HH:MM:SS,mmm --> HH:MM:SS,mmm`` and their text."""
    return "".join(
        f"{i}\n{_clock(s['start'], ',')} --> {_clock(s['end'], ',')}\n{s['text']}\n\n" for i, s in enumerate(segs, 1)
    )


def _vtt_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(segs: Sequence[dict[str, Any]]) -> str:
    """WebVTT: the ``WEBVTT`` header, then cues ``HH:MM:SS.mmm --> HH:MM:SS.mmm``."""
    return "WEBVTT\n\n" + "".join(
        f"{_clock(s['start'], '.')} --> {_clock(s['end'], '.')}\n{_vtt_text(s['text'])}\n\n" for s in segs
    )


def to_tsv(segs: Sequence[dict[str, Any]]) -> str:
    """Tab-separated ``start``, ``end`` (integer milliseconds) and ``text``, with a header."""
    rows = [f"{round(1000 * s['start'])}\t{round(1000 * s['end'])}\t{s['text']}\n" for s in segs]
    return "start\tend\ttext\n" + "".join(rows)


def render(row: dict[str, Any], fmt: str) -> str:
    """A transcription's ``to_dict()`` row as one of :data:`SUBTITLE_FORMATS`, texts escaped."""
    segs = [{**s, "text": escape(s["text"])} for s in segments(row.get("words", []))]
    return {"srt": to_srt, "vtt": to_vtt, "tsv": to_tsv}[fmt](segs)
