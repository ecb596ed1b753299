"""Manifest validation: keep the usable records, report the others with a reason.

Every dropped record is returned as ``(id, reason)``. A reason starts with one of the
categories in :data:`REASONS`, optionally followed by ``": detail"``, so the summary can count
drops per category while the report keeps the detail.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from data_prep.audio import AudioError, audio_info
from data_prep.text_norm import normalize_text
from pipeline.errors import SeqrecError
from pipeline.io_utils import atomic_write_text

log = logging.getLogger(__name__)

MISSING_FILE = "missing file"
UNREADABLE = "unreadable audio"
EMPTY_TEXT = "empty text"
DURATION = "duration out of range"
DUPLICATE_ID = "duplicate id"
BAD_RECORD = "bad record"
NO_TRANSCRIPT = "no transcript"  # an audio file that no transcript line names
NAME_MISMATCH = "name mismatch"  # a file whose name disagrees with its row (Kinetics times)
UNREADABLE_VIDEO = "unreadable video"
REASONS = (
    MISSING_FILE, UNREADABLE, EMPTY_TEXT, DURATION, DUPLICATE_ID, BAD_RECORD, NO_TRANSCRIPT, NAME_MISMATCH,
    UNREADABLE_VIDEO,
)


class DropList(list):
    """What an importer leaves out: ``(item, reason)`` pairs, as :func:`write_dropped_report` takes.

    ``item`` is the record's id when it has one, else the file (and line) it came from; the
    reason starts with one of :data:`REASONS`.
    """

    def drop(self, item: str | Path, reason: str, logger: logging.Logger = log) -> None:
        """Records one dropped item and logs ``"<item>: <reason>; skipping"``."""
        logger.warning("%s: %s; skipping", item, reason)
        self.append((str(item), reason))


def reason_category(reason: str) -> str:
    """The category of a reason string: the part before ``": "``."""
    return reason.split(": ", 1)[0]


def validate_speech(
    records: list[dict[str, Any]],
    *,
    min_duration: float = 0.1,
    max_duration: float = 30.0,
    check_audio: bool = True,
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Splits speech records into usable ones and dropped ones.

    Checks, in order: the record has an id, a path and a text; the id is not a repeat; the text
    is not empty after :func:`~data_prep.text_norm.normalize_text`; the audio file exists; with
    ``check_audio`` its header reads (:func:`~data_prep.audio.audio_info`) and that duration,
    otherwise the manifest's, lies in ``[min_duration, max_duration]``.

    Args:
        records: Manifest records (paths as :func:`~data_prep.manifest.read_manifest` gives them).
        min_duration: Shortest duration kept, seconds.
        max_duration: Longest duration kept, seconds.
        check_audio: Open each file's header; False trusts the manifest's ``duration``.

    Returns:
        ``(kept, dropped)``: kept records unchanged and in order, and ``(id, reason)`` pairs.
    """
    kept: list[dict[str, Any]] = []
    dropped: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, rec in enumerate(records):
        rec_id = str(rec.get("id", f"<record {index}>"))
        reason = _check(rec, seen, min_duration, max_duration, check_audio)
        if reason is None:
            kept.append(rec)
        else:
            dropped.append((rec_id, reason))
        seen.add(rec_id)
    _log_summary(len(records), kept, dropped)
    return kept, dropped


def _check(
    rec: dict[str, Any], seen: set[str], lo: float, hi: float, check_audio: bool
) -> str | None:
    missing = [k for k in ("id", "audio_filepath", "text") if not isinstance(rec.get(k), str)]
    if missing:
        return f"{BAD_RECORD}: missing or non-string field(s) {', '.join(missing)}"
    if rec["id"] in seen:
        return DUPLICATE_ID
    if not normalize_text(rec["text"]):
        return EMPTY_TEXT
    path = Path(rec["audio_filepath"])
    if not path.is_file():
        return f"{MISSING_FILE}: {path}"
    if check_audio:
        try:
            duration = audio_info(path).duration
        except AudioError as exc:
            return f"{UNREADABLE}: {exc.reason}"
    else:
        duration = rec.get("duration")
        if isinstance(duration, bool) or not isinstance(duration, (int, float)):
            return f"{BAD_RECORD}: no numeric duration"
    if not lo <= duration <= hi:
        return f"{DURATION}: {duration:.3f} s not in [{lo:g}, {hi:g}]"
    return None


def _log_summary(total: int, kept: list, dropped: list[tuple[str, str]]) -> None:
    if not dropped:
        log.info("validated %d records: all kept", total)
        return
    counts = Counter(reason_category(reason) for _, reason in dropped)
    detail = ", ".join(f"{n} {cat}" for cat, n in counts.most_common())
    log.warning(
        "validated %d records: kept %d, dropped %d (%s)", total, len(kept), len(dropped), detail
    )


def write_dropped_report(path: str | Path, dropped: list[tuple[str, str]]) -> Path:
    """Writes dropped records as TSV (``id<TAB>reason``, with a header and a count per reason).

    Returns:
        The report path (written atomically).
    """
    path = Path(path)
    counts = Counter(reason_category(reason) for _, reason in dropped)
    lines = [f"# {n}\t{cat}" for cat, n in sorted(counts.items())]
    lines.append("id\treason")
    lines += [f"{_one_line(i)}\t{_one_line(r)}" for i, r in dropped]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def read_dropped_report(path: str | Path) -> list[tuple[str, str]]:
    """The ``(id, reason)`` pairs of a report written by :func:`write_dropped_report` ([] if absent)."""
    path = Path(path)
    if not path.is_file():
        return []
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or line == "id\treason" or "\t" not in line:
            continue
        item, reason = line.split("\t", 1)
        pairs.append((item, reason))
    return pairs


def report_path(manifest: str | Path) -> Path:
    """The dropped-items report that belongs to a manifest: ``<split>.dropped.tsv`` beside it."""
    return Path(manifest).with_suffix(".dropped.tsv")


def carry_report(source: Path, dest: Path) -> None:
    """Copies ``source``'s report (what an import left out) to ``dest``'s ([] when it has none)."""
    write_dropped_report(report_path(dest), read_dropped_report(report_path(source)))


class EmptySplitError(SeqrecError, ValueError):
    """Nothing usable is left in a split after import and validation."""


def finish_split(split: str, manifest: Path, kept: list, dropped: list[tuple[str, str]], source: Path) -> None:
    """Writes ``manifest``'s report: what the import left out (``source``'s report) and then
    ``dropped``; raises :class:`EmptySplitError` (one line naming the report) when nothing is kept."""
    report = report_path(manifest)
    everything = read_dropped_report(report_path(source)) + list(dropped)
    write_dropped_report(report, everything)
    if not kept:
        raise EmptySplitError(f"{split}: nothing left to use: {len(everything)} item(s) dropped, reasons in {report}")


def _one_line(text: str) -> str:
    return " ".join(str(text).replace("\t", " ").split())
