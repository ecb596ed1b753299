"""JSONL manifests: one record per utterance or clip.

Speech records hold ``id, audio_filepath, duration, text, speaker``; video records hold
``id, video_filepath, label, num_frames, fps`` (docs/design.md). Media paths are stored relative
to the manifest's directory and resolved to absolute paths on read, so a corpus directory
can be moved as a whole.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pipeline.errors import SeqrecError
from pipeline.io_utils import atomic_write_text

log = logging.getLogger(__name__)

Kind = Literal["speech", "video"]

FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "speech": {
        "id": str,
        "audio_filepath": str,
        "duration": (int, float),
        "text": str,
        "speaker": str,
    },
    "video": {
        "id": str,
        "video_filepath": str,
        "label": str,
        "num_frames": int,
        "fps": (int, float),
    },
}
PATH_KEY = {"speech": "audio_filepath", "video": "video_filepath"}


class ManifestError(SeqrecError, ValueError):
    """A manifest line cannot be used; the message names the file and line."""


def write_manifest(path: str | Path, records: Iterable[dict[str, Any]], kind: Kind) -> Path:
    """Writes records as JSONL, storing media paths relative to the manifest's directory.

    Args:
        path: Destination ``.jsonl`` file (written atomically).
        records: Dicts with at least the fields of ``kind``; media paths are absolute or
            relative to the current working directory.
        kind: ``"speech"`` or ``"video"``.
    """
    path = Path(path)
    base = path.parent.resolve()
    key = PATH_KEY[kind]
    lines = []
    for rec in records:
        rec = dict(rec)
        # Media paths are filesystem paths as the caller sees them (absolute or relative to
        # the working directory); the manifest stores them relative to itself.
        rec[key] = os.path.relpath(Path(rec[key]).resolve(), base)
        lines.append(json.dumps(rec, ensure_ascii=False))
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path


def read_manifest(path: str | Path, kind: Kind, *, strict: bool = True) -> list[dict[str, Any]]:
    """Reads a JSONL manifest and resolves media paths to absolute paths.

    Args:
        path: The manifest.
        kind: ``"speech"`` or ``"video"``; decides which fields are required.
        strict: If True a broken line raises; if False it is logged and skipped.

    Raises:
        ManifestError: naming ``file:line`` for invalid JSON, missing fields or wrong types.
            Unknown keys are kept and logged once, since other toolkits add their own.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text: {exc}") from exc
    base = path.parent.resolve()
    fields = FIELDS[kind]
    key = PATH_KEY[kind]
    records: list[dict[str, Any]] = []
    unknown_seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = _parse_line(line, fields)
        except ManifestError as exc:
            msg = f"{path}:{lineno}: {exc}"
            if strict:
                raise ManifestError(msg) from None
            log.warning("skipping %s", msg)
            continue
        unknown_seen.update(set(rec) - set(fields))
        media = Path(rec[key])
        rec[key] = os.path.normpath(media if media.is_absolute() else base / media)
        records.append(rec)
    if unknown_seen:
        log.debug("%s: keeping extra keys %s", path, sorted(unknown_seen))
    return records


def _parse_line(line: str, fields: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"invalid JSON ({exc.msg})") from None
    if not isinstance(rec, dict):
        raise ManifestError(f"expected a JSON object, got {type(rec).__name__}")
    missing = [f for f in fields if f not in rec]
    if missing:
        raise ManifestError(f"missing field(s) {', '.join(missing)}")
    for name, tp in fields.items():
        value = rec[name]
        if isinstance(value, bool) or not isinstance(value, tp):
            raise ManifestError(f"field {name!r} has wrong type: {value!r}")
        if isinstance(value, (int, float)) and not (math.isfinite(value) and value >= 0):
            raise ManifestError(f"field {name!r} must be a finite number >= 0, got {value!r}")
    return rec
