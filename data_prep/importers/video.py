"""Importers for real video corpora: UCF101 and HMDB51 folders + split lists, Kinetics
annotation CSVs, ``path,label`` CSVs and MMAction lists.

Every importer probes each video with :func:`data_prep.video_io.probe_video` (which decodes
it fully) to fill ``num_frames`` and ``fps``. What an importer leaves out (a missing or
unreadable video, a malformed line, a Kinetics clip whose file name disagrees with its row)
is logged with the file named and recorded, with its reason, in the ``drops``
:class:`~data_prep.validate.DropList` the caller passes; the rest are imported. A list or
split file that cannot be used at all raises :class:`VideoImportError`. Manifests are written
through :func:`data_prep.manifest.write_manifest` (paths relative to the manifest).
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_prep.manifest import write_manifest
from data_prep.validate import BAD_RECORD, MISSING_FILE, NAME_MISMATCH, UNREADABLE_VIDEO, DropList
from data_prep.video_io import VideoError, probe_video
from pipeline.errors import SeqrecError

log = logging.getLogger(__name__)

_HEADER_PATH = {"path", "video", "video_path", "video_filepath", "filename", "file"}
#: File extensions taken as videos when a corpus is searched for clips by name.
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp"}
)


class VideoImportError(SeqrecError, ValueError):
    """A list or split file cannot be used; the message names the file (and line)."""


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise VideoImportError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise VideoImportError(f"{path}: not UTF-8 text: {exc}") from None


def _probe_reason(exc: VideoError) -> str:
    """A drop reason for a video that failed to probe: missing file or unreadable video."""
    missing = exc.reason in ("file not found", "broken symbolic link")
    return f"{MISSING_FILE if missing else UNREADABLE_VIDEO}: {exc}"


def _probe_record(entry: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    path = Path(entry["video_filepath"])
    try:
        info = probe_video(path)
    except VideoError as exc:
        return None, _probe_reason(exc)
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
        ``(entry, reason)`` pairs whose reason names the file (not logged here).
    """
    if num_workers > 1 and len(entries) > 1:
        with ThreadPoolExecutor(max_workers=num_workers) as pool:
            results = list(pool.map(_probe_record, entries))
    else:
        results = [_probe_record(e) for e in entries]
    kept, dropped = [], []
    for entry, (rec, reason) in zip(entries, results, strict=True):
        if rec is None:
            dropped.append((entry, str(reason)))
        else:
            if entry.get("num_frames") not in (None, rec["num_frames"]):
                log.info(
                    "%s: listed with %s frames, %d decode",
                    entry["video_filepath"], entry["num_frames"], rec["num_frames"],
                )  # fmt: skip
            kept.append(rec)
    return kept, dropped


def _probe_into(
    entries: list[dict[str, Any]], num_workers: int, drops: DropList
) -> list[dict[str, Any]]:
    """Gives entries unique ids, probes them and records the failures in ``drops``.

    Returns:
        The records that decode, in input order.
    """
    _unique_ids(entries)
    kept, dropped = _probe_all(entries, num_workers)
    for entry, reason in dropped:
        drops.drop(entry["id"], reason, log)
    return kept


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


def _write(out_manifest: str | Path, records: list[dict[str, Any]], source: Path, skipped: int) -> None:
    write_manifest(out_manifest, records, "video")
    log.info("%s: imported %d videos into %s; skipped %d", source, len(records), out_manifest, skipped)


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
        ``(kept, dropped)``; dropped holds ``(record, reason)`` pairs, each reason starting
        with a category of :data:`data_prep.validate.REASONS`.
    """
    records = list(records)
    dropped: list[tuple[dict[str, Any], str]] = []
    to_probe = []
    for rec in records:
        if not str(rec.get("label", "")).strip():
            dropped.append((rec, f"{BAD_RECORD}: empty label"))
        elif not rec.get("video_filepath"):
            dropped.append((rec, f"{BAD_RECORD}: no video_filepath"))
        else:
            to_probe.append(rec)
    kept, bad = _probe_all(to_probe, num_workers)
    for rec, reason in dropped + bad:
        log.warning("dropping %s: %s", rec.get("id", rec.get("video_filepath")), reason)
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


def _read_ucf_list(
    path: Path, root: Path, classes: dict[int, str], drops: DropList
) -> list[dict[str, Any]]:
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
            drops.drop(f"{path}:{lineno}", f"{BAD_RECORD}: no class in classInd.txt for {line.strip()!r}", log)
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
    drops: dict[str, DropList] | None = None,
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
        drops: Split name -> what that split leaves out (a list is added for a missing key).

    Returns:
        ``{"train": path, "test": path}``.

    Raises:
        VideoImportError: a list file is missing or malformed.
    """
    root, split_dir, out_dir = Path(root), Path(split_dir), Path(out_dir)
    drops = {} if drops is None else drops
    classes = _read_class_ind(split_dir / "classInd.txt")
    out: dict[str, Path] = {}
    for name in ("train", "test"):
        split_drops = drops.setdefault(name, DropList())
        first = len(split_drops)
        list_file = split_dir / f"{name}list{split:02d}.txt"
        kept = _probe_into(_read_ucf_list(list_file, root, classes, split_drops), num_workers, split_drops)
        out[name] = out_dir / f"{name}.jsonl"
        _write(out[name], kept, list_file, len(split_drops) - first)
    return out


# --------------------------------------------------------------------------- HMDB51

_HMDB_SPLIT_FILE = re.compile(r"^(?P<label>.+)_test_split(?P<number>\d+)\.txt$")
_HMDB_ROLE = {"1": "train", "2": "test", "0": None}  # 0: in neither half of this split


def hmdb51_split_files(split_dir: str | Path, split: int) -> dict[str, Path]:
    """Class name -> ``<class>_test_split<split>.txt`` for every such file in ``split_dir``."""
    files = {}
    for path in sorted(Path(split_dir).glob(f"*_test_split{split}.txt")):
        match = _HMDB_SPLIT_FILE.match(path.name)
        if match and int(match["number"]) == split:
            files[match["label"]] = path
    return files


def find_hmdb51_split_dir(root: str | Path) -> Path | None:
    """The folder holding HMDB51 split files: ``root`` or one of its sub-folders (None if none)."""
    root = Path(root)
    for candidate in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        if any(_HMDB_SPLIT_FILE.match(p.name) for p in candidate.glob("*_test_split*.txt")):
            return candidate
    return None


def _read_hmdb_split_file(
    path: Path, label: str, root: Path, drops: dict[str, DropList]
) -> dict[str, list[dict[str, Any]]]:
    """The train and test entries one ``<class>_test_splitN.txt`` names.

    A line whose video is not in ``root/<class>/`` is dropped as a missing file, naming the
    split file and line; a line that is not ``<video> <0|1|2>`` is a bad record (counted
    against train). ``drops`` must hold ``"train"`` and ``"test"``.
    """
    entries: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    for lineno, line in enumerate(_read_lines(path), start=1):
        parts = line.strip().rsplit(maxsplit=1)  # video names may hold spaces; the flag cannot
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in _HMDB_ROLE:
            drops["train"].drop(
                f"{path}:{lineno}", f"{BAD_RECORD}: expected '<video> <0|1|2>', got {line.strip()!r}", log
            )
            continue
        name, role = parts[0], _HMDB_ROLE[parts[1]]
        if role is None:
            continue
        video = _resolve_case_insensitive(root, f"{label}/{name}")
        if not video.is_file():
            drops[role].drop(
                Path(name).stem, f"{MISSING_FILE}: {video} (listed in {path}:{lineno})", log
            )
            continue
        entries[role].append({"id": Path(name).stem, "video_filepath": str(video.resolve()), "label": label})
    return entries


def import_hmdb51(
    root: str | Path,
    split_dir: str | Path,
    out_dir: str | Path,
    *,
    split: int = 1,
    num_workers: int = 1,
    drops: dict[str, DropList] | None = None,
) -> dict[str, Path]:
    """Imports an HMDB51-style corpus: ``root/<class>/<video>.avi`` plus split files.

    ``split_dir`` holds one ``<class>_test_split<N>.txt`` per class and split, each line
    ``<video>.avi <flag>``: 1 puts the video in train, 2 in test, 0 in neither. The class
    name (the label) is the file name before ``_test_split``.

    Args:
        root: Folder of class folders.
        split_dir: Folder of the split files (e.g. ``testTrainMulti_7030_splits``).
        out_dir: Where ``train.jsonl`` and ``test.jsonl`` go.
        split: Official split number (1-3).
        num_workers: Threads probing videos.
        drops: Split name -> what that split leaves out (a list is added for a missing key);
            a malformed line counts against train.

    Returns:
        ``{"train": path, "test": path}``.

    Raises:
        VideoImportError: no split file for ``split``, or one cannot be read.
    """
    root, split_dir, out_dir = Path(root), Path(split_dir), Path(out_dir)
    drops = {} if drops is None else drops
    first = {name: len(drops.setdefault(name, DropList())) for name in ("train", "test")}
    files = hmdb51_split_files(split_dir, split)
    if not files:
        raise VideoImportError(f"{split_dir}: no <class>_test_split{split}.txt files for split {split}")
    entries: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    for label, path in files.items():
        for role, found in _read_hmdb_split_file(path, label, root, drops).items():
            entries[role] += found
    out: dict[str, Path] = {}
    for name in ("train", "test"):
        kept = _probe_into(entries[name], num_workers, drops[name])
        out[name] = out_dir / f"{name}.jsonl"
        _write(out[name], kept, split_dir, len(drops[name]) - first[name])
    return out


# --------------------------------------------------------------------------- Kinetics

KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end")
_KINETICS_NAME = re.compile(r"^(?P<youtube_id>.+)_(?P<start>\d{6})_(?P<end>\d{6})$")
#: Annotation file names of each split, in order of preference.
KINETICS_SPLIT_FILES = {"train": ("train.csv",), "dev": ("validate.csv", "val.csv"), "test": ("test.csv",)}


def kinetics_clip_name(youtube_id: str, time_start: int, time_end: int) -> str:
    """The file stem a Kinetics clip is stored under: ``<youtube_id>_<start:06d>_<end:06d>``."""
    return f"{youtube_id}_{time_start:06d}_{time_end:06d}"


def is_kinetics_csv(path: str | Path) -> bool:
    """Whether ``path`` is a CSV whose header names a ``youtube_id`` column."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError):
        return False
    header = next(csv.reader([first]), [])
    return "youtube_id" in (h.strip() for h in header)


def find_kinetics_csv_dir(root: str | Path) -> Path | None:
    """The folder of the Kinetics annotation CSVs: ``root`` or ``root/annotations`` (None if
    neither holds a ``train.csv`` with a ``youtube_id`` column)."""
    for folder in (Path(root), Path(root) / "annotations"):
        if is_kinetics_csv(folder / "train.csv"):
            return folder
    return None


def kinetics_split_files(csv_dir: str | Path) -> dict[str, Path]:
    """Split name -> its annotation CSV in ``csv_dir``, for the splits that have one
    (``validate.csv``, or else ``val.csv``, is dev)."""
    out = {}
    for split, names in KINETICS_SPLIT_FILES.items():
        found = next((Path(csv_dir) / n for n in names if (Path(csv_dir) / n).is_file()), None)
        if found is not None:
            out[split] = found
    return out


@dataclass
class KineticsClips:
    """The video files under a Kinetics root, indexed once by stem and by YouTube id."""

    root: Path
    by_name: dict[str, Path] = field(default_factory=dict)
    by_video: dict[str, list[Path]] = field(default_factory=dict)


def index_kinetics_clips(root: str | Path) -> KineticsClips:
    """Finds every video file under ``root`` (any depth: ``train/<label>/``, ``val/``, flat).

    A stem found twice keeps its first path in sorted order (logged).
    """
    clips = KineticsClips(Path(root))
    for path in sorted(Path(root).rglob("*")):
        if path.suffix.lower() not in VIDEO_EXTENSIONS or not path.is_file():
            continue
        if path.stem in clips.by_name:
            log.info("%s: another file named %s is used (%s)", path, path.stem, clips.by_name[path.stem])
            continue
        clips.by_name[path.stem] = path
        match = _KINETICS_NAME.match(path.stem)
        if match:
            clips.by_video.setdefault(match["youtube_id"], []).append(path)
    return clips


@dataclass(frozen=True)
class _KineticsRow:
    lineno: int
    label: str
    youtube_id: str
    name: str  # the clip's expected file stem


def _whole_seconds(text: str) -> int | None:
    """A non-negative whole number of seconds (``"12"``, ``"12.0"``), else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() and value >= 0 else None


def _kinetics_rows(csv_path: Path, drops: DropList) -> list[_KineticsRow]:
    """The usable rows of a Kinetics annotation CSV, read by header name.

    Raises:
        VideoImportError: the header lacks a required column.
    """
    reader = csv.DictReader(_read_lines(csv_path))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in KINETICS_COLUMNS if c not in header]
    if missing:
        raise VideoImportError(
            f"{csv_path}: header lacks {', '.join(missing)} (expected {','.join(KINETICS_COLUMNS)},split)"
        )
    reader.fieldnames = header
    rows = []
    for row in reader:
        lineno = reader.line_num
        values = {c: (row.get(c) or "").strip() for c in KINETICS_COLUMNS}
        start, end = _whole_seconds(values["time_start"]), _whole_seconds(values["time_end"])
        if not values["label"] or not values["youtube_id"] or start is None or end is None:
            drops.drop(f"{csv_path}:{lineno}", f"{BAD_RECORD}: expected a label, a youtube_id and whole-second "
                       f"times, got {','.join(values.values())!r}", log)  # fmt: skip
            continue
        name = kinetics_clip_name(values["youtube_id"], start, end)
        rows.append(_KineticsRow(lineno, values["label"], values["youtube_id"], name))
    return rows


def _kinetics_missing_reason(row: _KineticsRow, clips: KineticsClips, listed: set[str], csv_path: Path) -> str:
    """Why a row has no clip: a file of the same video with other times (name mismatch) or none."""
    where = f"row {csv_path}:{row.lineno}"
    others = [p for p in clips.by_video.get(row.youtube_id, []) if p.stem not in listed]
    if others:
        found = others[0]
        return f"{NAME_MISMATCH}: {where} expects {row.name}{found.suffix}, found {found}"
    return f"{MISSING_FILE}: no {row.name}.<video extension> under {clips.root} ({where})"


def import_kinetics(
    csv_path: str | Path,
    out_manifest: str | Path,
    *,
    clips: KineticsClips | None = None,
    num_workers: int = 1,
    drops: DropList | None = None,
) -> list[dict[str, Any]]:
    """Imports one Kinetics annotation CSV (``train.csv``, ``validate.csv``, ``test.csv``).

    The header names ``label,youtube_id,time_start,time_end`` (in any order; other columns
    such as ``split`` or ``is_cc`` are ignored). Each row's clip is the video file named
    ``<youtube_id>_<time_start:06d>_<time_end:06d>`` with any video extension, anywhere under
    the corpus root. A row without its clip is dropped: as a ``name mismatch`` when a file of
    the same YouTube id with other times exists (and no row of this CSV names it), else as a
    ``missing file``.

    Args:
        csv_path: The annotation CSV.
        out_manifest: Manifest to write.
        clips: The corpus's video files (:func:`index_kinetics_clips`); default: those under
            the CSV's folder.
        num_workers: Threads probing videos.
        drops: Collects what is left out, with reasons.

    Returns:
        The records written (id = clip name, absolute ``video_filepath``).

    Raises:
        VideoImportError: the CSV cannot be read or lacks a required column.
    """
    csv_path = Path(csv_path)
    drops = DropList() if drops is None else drops
    first = len(drops)
    clips = index_kinetics_clips(csv_path.parent) if clips is None else clips
    rows = _kinetics_rows(csv_path, drops)
    listed = {row.name for row in rows}
    entries = []
    for row in rows:
        path = clips.by_name.get(row.name)
        if path is None:
            drops.drop(row.name, _kinetics_missing_reason(row, clips, listed, csv_path), log)
            continue
        entries.append({"id": row.name, "video_filepath": str(path.resolve()), "label": row.label})
    kept = _probe_into(entries, num_workers, drops)
    _write(out_manifest, kept, csv_path, len(drops) - first)
    return kept


# --------------------------------------------------------------------------- CSV / lists


def import_csv(
    csv_path: str | Path, out_manifest: str | Path, *, num_workers: int = 1, drops: DropList | None = None
) -> list[dict[str, Any]]:
    """Imports a ``path,label`` CSV (header optional; relative paths are relative to the CSV).

    Args:
        csv_path: The CSV.
        out_manifest: Manifest to write.
        num_workers: Threads probing videos.
        drops: Collects what is left out (bad rows, missing or unreadable videos), with reasons.

    Returns:
        The records written (absolute ``video_filepath``).

    Raises:
        VideoImportError: the CSV cannot be read.
    """
    csv_path = Path(csv_path)
    drops = DropList() if drops is None else drops
    first = len(drops)
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
            drops.drop(f"{csv_path}:{lineno}", f"{BAD_RECORD}: expected 'path,label', got {','.join(row)!r}", log)
            continue
        path = Path(row[0]).expanduser()
        path = path if path.is_absolute() else base / path
        entries.append({"id": path.stem, "video_filepath": str(path.resolve()), "label": row[1]})
    kept = _probe_into(entries, num_workers, drops)
    _write(out_manifest, kept, csv_path, len(drops) - first)
    return kept


def _mmaction_label(label: str, class_names: Sequence[str] | None) -> str | None:
    """A list line's label as a name: integers index ``class_names`` (None when outside it)."""
    if not label.lstrip("-").isdigit() or class_names is None:
        return label
    idx = int(label)
    return class_names[idx] if 0 <= idx < len(class_names) else None


def import_mmaction_list(
    list_path: str | Path,
    out_manifest: str | Path,
    *,
    root: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    num_workers: int = 1,
    drops: DropList | None = None,
) -> list[dict[str, Any]]:
    """Imports an MMAction2-style video list: ``<path> <label>`` per line.

    Args:
        list_path: The list file.
        out_manifest: Manifest to write.
        root: Prefix of relative paths (default: the list's folder).
        class_names: Names for integer labels (``label`` indexes it); without it integer
            labels are kept as strings. Non-integer labels are taken as names.
        num_workers: Threads probing videos.
        drops: Collects what is left out (bad lines, missing or unreadable videos), with reasons.

    Returns:
        The records written (absolute ``video_filepath``).
    """
    list_path = Path(list_path)
    drops = DropList() if drops is None else drops
    first = len(drops)
    base = Path(root) if root is not None else list_path.parent
    entries: list[dict[str, Any]] = []
    for lineno, line in enumerate(_read_lines(list_path), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        item = f"{list_path}:{lineno}"
        parts = line.strip().rsplit(maxsplit=1)  # paths may contain spaces; the label cannot
        if len(parts) != 2:
            drops.drop(item, f"{BAD_RECORD}: expected '<path> <label>', got {line.strip()!r}", log)
            continue
        rel, label = parts[0], _mmaction_label(parts[1], class_names)
        if label is None:
            drops.drop(item, f"{BAD_RECORD}: label {parts[1]} outside class_names ({len(class_names or ())})", log)
            continue
        path = Path(rel).expanduser()
        path = path if path.is_absolute() else base / path
        entries.append({"id": path.stem, "video_filepath": str(path.resolve()), "label": label})
    kept = _probe_into(entries, num_workers, drops)
    _write(out_manifest, kept, list_path, len(drops) - first)
    return kept
