"""Importers for real video corpora: UCF101 folders + split lists, CSV, MMAction lists.

Every importer probes each video with :func:`data_prep.video_io.probe_video` (which decodes
it fully) to fill ``num_frames`` and ``fps``. A missing or unreadable video is logged with
its path and the reason and skipped; the rest are imported. Manifests are written through
:func:`data_prep.manifest.write_manifest` (paths relative to the manifest).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from data_prep.manifest import write_manifest
from data_prep.video_io import VideoError, probe_video
from pipeline.errors import SeqrecError

log = logging.getLogger(__name__)

_HEADER_PATH = {"path", "video", "video_path", "video_filepath", "filename", "file"}


class VideoImportError(SeqrecError, ValueError):
    """A list or split file cannot be used; the message names the file (and line)."""


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise VideoImportError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise VideoImportError(f"{path}: not UTF-8 text: {exc}") from None


def _probe_record(entry: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    path = Path(entry["video_filepath"])
    try:
        info = probe_video(path)
    except VideoError as exc:
        return None, exc.reason
    rec = dict(entry)
    rec["num_frames"] = info.num_frames
    rec["fps"] = float(info.fps)
    return rec, None


def _probe_all(
    entries: Sequence[dict[str, Any]], num_workers: int
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """Probes entries (threads: OpenCV decodes without the GIL); keeps the input order.

    Returns:
        ``(kept, dropped)``: kept records carry probed ``num_frames``/``fps``; dropped holds
        ``(entry, reason)`` pairs, each also logged with the file's path.
    """
    if num_workers > 1 and len(entries) > 1:
        with ThreadPoolExecutor(max_workers=num_workers) as pool:
            results = list(pool.map(_probe_record, entries))
    else:
        results = [_probe_record(e) for e in entries]
    kept, dropped = [], []
    for entry, (rec, reason) in zip(entries, results, strict=True):
        if rec is None:
            log.warning("skipping %s: %s", entry["video_filepath"], reason)
            dropped.append((entry, str(reason)))
        else:
            if entry.get("num_frames") not in (None, rec["num_frames"]):
                log.info(
                    "%s: listed with %s frames, %d decode",
                    entry["video_filepath"], entry["num_frames"], rec["num_frames"],
                )  # fmt: skip
            kept.append(rec)
    return kept, dropped


def _unique_ids(entries: list[dict[str, Any]]) -> None:
    """Makes ids unique in place (same file stem in two folders)."""
    seen: dict[str, int] = {}
    for e in entries:
        base = e["id"]
        if base in seen:
            seen[base] += 1
            e["id"] = f"{base}-{seen[base]}"
        else:
            seen[base] = 0


def validate_video(
    records: Iterable[dict[str, Any]], *, num_workers: int = 1
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """Checks video manifest records; reports what it drops and why.

    A record is dropped when its label is empty or its file is missing, unreadable or has
    no decodable frame. Kept records get ``num_frames``/``fps`` from the probe (a mismatch
    with the stored values is logged).

    Args:
        records: Video records with absolute (or cwd-relative) ``video_filepath``.
        num_workers: Threads probing files.

    Returns:
        ``(kept, dropped)``; dropped holds ``(record, reason)`` pairs.
    """
    records = list(records)
    dropped: list[tuple[dict[str, Any], str]] = []
    to_probe = []
    for rec in records:
        if not str(rec.get("label", "")).strip():
            dropped.append((rec, "empty label"))
            log.warning("dropping %s: empty label", rec.get("id", rec.get("video_filepath")))
        elif not rec.get("video_filepath"):
            dropped.append((rec, "no video_filepath"))
            log.warning("dropping %s: no video_filepath", rec.get("id"))
        else:
            to_probe.append(rec)
    kept, bad = _probe_all(to_probe, num_workers)
    return kept, dropped + bad


# --------------------------------------------------------------------------- UCF101


def _resolve_case_insensitive(root: Path, rel: str) -> Path:
    """``root/rel``; if missing, matches each path part case-insensitively.

    UCF101's lists and folders disagree in case for some classes (``HandstandPushups`` vs
    ``HandStandPushups``).
    """
    path = root / rel
    if path.exists():
        return path
    cur = root
    for part in Path(rel).parts:
        nxt = cur / part
        if not nxt.exists() and cur.is_dir():
            matches = [p for p in cur.iterdir() if p.name.lower() == part.lower()]
            nxt = matches[0] if matches else nxt
        cur = nxt
    return cur


def _read_class_ind(path: Path) -> dict[int, str]:
    classes: dict[int, str] = {}
    for lineno, line in enumerate(_read_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit():
            raise VideoImportError(f"{path}:{lineno}: expected '<index> <ClassName>', got {line!r}")
        classes[int(parts[0])] = parts[1]
    if not classes:
        raise VideoImportError(f"{path}: no classes")
    return classes


def _read_ucf_list(path: Path, root: Path, classes: dict[int, str]) -> list[dict[str, Any]]:
    by_lower = {name.lower(): name for name in classes.values()}
    entries = []
    for lineno, line in enumerate(_read_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        rel = parts[0]
        folder = Path(rel).parts[0] if len(Path(rel).parts) > 1 else ""
        if len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) in classes:
            label = classes[int(parts[1])]
        elif folder.lower() in by_lower:
            label = by_lower[folder.lower()]
        else:
            log.warning("%s:%d: no class for %r; skipping", path, lineno, line)
            continue
        entries.append(
            {
                "id": Path(rel).stem,
                "video_filepath": str(_resolve_case_insensitive(root, rel).resolve()),
                "label": label,
            }
        )
    return entries


def import_ucf101(
    root: str | Path,
    split_dir: str | Path,
    out_dir: str | Path,
    *,
    split: int = 1,
    num_workers: int = 1,
) -> dict[str, Path]:
    """Imports a UCF101-style corpus: ``root/<Class>/<video>.avi`` plus split lists.

    ``split_dir`` holds ``classInd.txt`` (``1 ApplyEyeMakeup``), ``trainlist0N.txt``
    (``ApplyEyeMakeup/v_x.avi 1``) and ``testlist0N.txt`` (``ApplyEyeMakeup/v_x.avi``).

    Args:
        root: Folder of class folders.
        split_dir: Folder of the list files.
        out_dir: Where ``train.jsonl`` and ``test.jsonl`` go.
        split: Official split number (1-3).
        num_workers: Threads probing videos.

    Returns:
        ``{"train": path, "test": path}``.

    Raises:
        VideoImportError: a list file is missing or malformed.
    """
    root, split_dir, out_dir = Path(root), Path(split_dir), Path(out_dir)
    classes = _read_class_ind(split_dir / "classInd.txt")
    out: dict[str, Path] = {}
    for name in ("train", "test"):
        entries = _read_ucf_list(split_dir / f"{name}list{split:02d}.txt", root, classes)
        _unique_ids(entries)
        kept, dropped = _probe_all(entries, num_workers)
        log.info("UCF101 split %d %s: %d videos, %d skipped", split, name, len(kept), len(dropped))
        out[name] = write_manifest(out_dir / f"{name}.jsonl", kept, "video")
    return out


# --------------------------------------------------------------------------- CSV / lists


def import_csv(
    csv_path: str | Path, out_manifest: str | Path, *, num_workers: int = 1
) -> list[dict[str, Any]]:
    """Imports a ``path,label`` CSV (header optional; relative paths are relative to the CSV).

    Returns:
        The records written (absolute ``video_filepath``).

    Raises:
        VideoImportError: the CSV cannot be read.
    """
    csv_path = Path(csv_path)
    base = csv_path.parent
    entries: list[dict[str, Any]] = []
    rows = list(csv.reader(_read_lines(csv_path)))
    for lineno, row in enumerate(rows, start=1):
        row = [c.strip() for c in row]
        if not row or not any(row):
            continue
        if lineno == 1 and row[0].lower() in _HEADER_PATH:
            continue
        if len(row) != 2 or not row[0] or not row[1]:
            log.warning("%s:%d: expected 'path,label', got %r; skipping", csv_path, lineno, row)
            continue
        path = Path(row[0]).expanduser()
        path = path if path.is_absolute() else base / path
        entries.append({"id": path.stem, "video_filepath": str(path.resolve()), "label": row[1]})
    _unique_ids(entries)
    kept, dropped = _probe_all(entries, num_workers)
    log.info("%s: %d videos, %d skipped", csv_path, len(kept), len(dropped))
    write_manifest(out_manifest, kept, "video")
    return kept


def import_mmaction_list(
    list_path: str | Path,
    out_manifest: str | Path,
    *,
    root: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    num_workers: int = 1,
) -> list[dict[str, Any]]:
    """Imports an MMAction2-style video list: ``<path> <label>`` per line.

    Args:
        list_path: The list file.
        out_manifest: Manifest to write.
        root: Prefix of relative paths (default: the list's folder).
        class_names: Names for integer labels (``label`` indexes it); without it integer
            labels are kept as strings. Non-integer labels are taken as names.
        num_workers: Threads probing videos.

    Returns:
        The records written (absolute ``video_filepath``).
    """
    list_path = Path(list_path)
    base = Path(root) if root is not None else list_path.parent
    entries: list[dict[str, Any]] = []
    for lineno, line in enumerate(_read_lines(list_path), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.strip().rsplit(maxsplit=1)  # paths may contain spaces; the label cannot
        if len(parts) != 2:
            log.warning(
                "%s:%d: expected '<path> <label>', got %r; skipping", list_path, lineno, line
            )
            continue
        rel, label = parts
        if label.lstrip("-").isdigit() and class_names is not None:
            idx = int(label)
            if not 0 <= idx < len(class_names):
                log.warning(
                    "%s:%d: label %d outside class_names (%d); skipping",
                    list_path,
                    lineno,
                    idx,
                    len(class_names),
                )
                continue
            label = class_names[idx]
        path = Path(rel).expanduser()
        path = path if path.is_absolute() else base / path
        entries.append({"id": path.stem, "video_filepath": str(path.resolve()), "label": label})
    _unique_ids(entries)
    kept, dropped = _probe_all(entries, num_workers)
    log.info("%s: %d videos, %d skipped", list_path, len(kept), len(dropped))
    write_manifest(out_manifest, kept, "video")
    return kept
