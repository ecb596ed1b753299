"""Importing a whole real corpus directory (train/dev/test) in any supported layout.

A corpus directory holds one entry per split, named after the split or starting with it
(``train``, ``train-clean-100``, ``dev-clean``, ``test_other`` ...). Several entries for one
split are merged. Each entry is one of:

- ``<split>.jsonl``: a NeMo manifest (``audio_filepath``, ``text``, optional ``duration``,
  ``offset``, ``id``, ``speaker``);
- a Kaldi data dir (``wav.scp``, ``text``, optional ``segments``/``utt2spk``);
- a folder of audio files with ``transcripts.tsv``;
- a LibriSpeech-layout tree (``<speaker>/<chapter>/<speaker>-<chapter>.trans.txt``).

A Common Voice release (``clips/`` beside ``train.tsv``, ``dev.tsv``, ``test.tsv``) is
recognised as a whole. Whatever an importer leaves out is written, with its reason, to
``<out_dir>/<split>.dropped.tsv``.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Literal, get_args

from data_prep.importers import speech, video
from data_prep.manifest import read_manifest, write_manifest
from data_prep.validate import DropList, write_dropped_report

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
#: Layouts :func:`import_speech_corpus` reads; recipe configs type ``data.format`` with it.
SpeechFormat = Literal["auto", "manifest", "nemo", "librispeech", "kaldi", "folder", "commonvoice"]
FORMATS: tuple[str, ...] = get_args(SpeechFormat)


def _split_entries(root: Path, split: str) -> list[Path]:
    entries = []
    for p in sorted(root.iterdir()):
        name = p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.name
        if name == split or name.startswith((f"{split}-", f"{split}_")):
            entries.append(p)
    return entries


def detect_format(entry: Path) -> str:
    """Guesses the layout of one split entry."""
    if entry.is_file() and entry.suffix == ".jsonl":
        return "manifest"
    if (entry / "wav.scp").is_file():
        return "kaldi"
    if (entry / "transcripts.tsv").is_file():
        return "folder"
    if next(entry.glob("*/*/*.trans.txt"), None) is not None:
        return "librispeech"
    raise ValueError(
        f"{entry}: cannot tell the corpus layout (expected a .jsonl manifest, a Kaldi dir with "
        "wav.scp, a folder with transcripts.tsv, or a LibriSpeech tree)"
    )


def is_common_voice(root: Path) -> bool:
    """A Common Voice locale folder: ``clips/`` and at least a ``train.tsv``."""
    return (root / "clips").is_dir() and (root / "train.tsv").is_file()


def _import_entry(entry: Path, fmt: str, out_manifest: Path, drops: DropList) -> list[dict]:
    segments = out_manifest.parent / f"{entry.name}-segments"
    if fmt in ("manifest", "nemo"):
        return speech.import_nemo_manifest(entry, out_manifest, segments_dir=segments, drops=drops)
    if fmt == "kaldi":
        return speech.import_kaldi(entry, out_manifest, segments_dir=segments, drops=drops)
    if fmt == "folder":
        return speech.import_audio_folder(entry, out_manifest, drops=drops)
    if fmt == "librispeech":
        return speech.import_librispeech(entry, out_manifest, drops=drops)
    raise ValueError(f"unknown corpus format {fmt!r}; choose one of {', '.join(FORMATS)}")


def import_speech_corpus(root: Path, out_dir: Path, *, fmt: str = "auto") -> dict[str, Path]:
    """Imports every split of a corpus directory into ``out_dir/<split>.jsonl``.

    Args:
        root: The corpus directory.
        out_dir: Where manifests (cut segments, and ``<split>.dropped.tsv``) are written.
        fmt: One of :data:`FORMATS` (``nemo`` is another name for ``manifest``).

    Returns:
        Split name -> manifest path, for the splits found.
    """
    root = Path(root)
    if fmt not in FORMATS:
        raise ValueError(f"unknown corpus format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: corpus directory not found")
    out_dir = Path(out_dir)
    out: dict[str, Path] = {}
    common_voice = fmt == "commonvoice" or (fmt == "auto" and is_common_voice(root))
    for split in SPLITS:
        drops = DropList()
        records: list[dict] = []
        if common_voice:
            tsv = root / f"{split}.tsv"
            if not tsv.is_file():
                log.warning("%s: no %s for split %r", root, tsv.name, split)
                continue
            log.info("importing %s (commonvoice)", tsv)
            records = speech.import_common_voice(root, tsv, out_dir / f"{split}-commonvoice.jsonl", drops)
        else:
            entries = _split_entries(root, split)
            if not entries:
                log.warning("%s: no entry for split %r", root, split)
                continue
            for entry in entries:
                entry_fmt = detect_format(entry) if fmt == "auto" else fmt
                log.info("importing %s (%s)", entry, entry_fmt)
                records += _import_entry(entry, entry_fmt, out_dir / f"{split}-{entry.name.removesuffix('.jsonl')}.jsonl", drops)
        out[split] = write_manifest(out_dir / f"{split}.jsonl", records, "speech")
        write_dropped_report(out_dir / f"{split}.dropped.tsv", drops)
    return out


#: Layouts :func:`import_video_corpus` reads; recipe configs type ``data.format`` with it.
VideoFormat = Literal["auto", "manifest", "ucf101", "kinetics", "hmdb51", "csv", "mmaction"]
VIDEO_FORMATS: tuple[str, ...] = get_args(VideoFormat)


def _video_split_file(root: Path, split: str, exts: tuple[str, ...]) -> Path | None:
    for ext in exts:
        candidate = root / f"{split}{ext}"
        if candidate.is_file():
            return candidate
    return None


def detect_video_format(root: Path) -> str:
    """Guesses the layout of a video corpus directory.

    Checked in this order: ``train.jsonl`` (manifest); ``classInd.txt`` in ``root`` or a
    sub-folder (UCF101); a ``train.csv`` whose header has ``youtube_id``, in ``root`` or
    ``root/annotations`` (Kinetics, checked before the plain CSV); ``<class>_test_split<N>.txt``
    files in ``root`` or a sub-folder (HMDB51); ``train.csv`` (``path,label``); ``train.txt``
    (MMAction).
    """
    if (root / "train.jsonl").is_file():
        return "manifest"
    if (root / "classInd.txt").is_file() or next(root.glob("*/classInd.txt"), None) is not None:
        return "ucf101"
    if video.find_kinetics_csv_dir(root) is not None:
        return "kinetics"
    if video.find_hmdb51_split_dir(root) is not None:
        return "hmdb51"
    if (root / "train.csv").is_file():
        return "csv"
    if (root / "train.txt").is_file():
        return "mmaction"
    raise ValueError(
        f"{root}: cannot tell the video corpus layout (expected train.jsonl, UCF101 class folders "
        "with classInd.txt, Kinetics train.csv with youtube_id, HMDB51 <class>_test_split1.txt files, "
        "train.csv with path,label, or an MMAction train.txt list)"
    )


def _split_dev(records: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Takes a class-stratified dev split from training records (deterministic for ``seed``)."""

    by_label: dict[str, list[dict]] = {}
    for r in records:
        by_label.setdefault(r["label"], []).append(r)
    train, dev = [], []
    rng = random.Random(seed)
    for label in sorted(by_label):
        items = sorted(by_label[label], key=lambda r: r["id"])
        rng.shuffle(items)
        n_dev = max(1, round(fraction * len(items))) if len(items) > 1 else 0
        dev += items[:n_dev]
        train += items[n_dev:]
    return train, dev


def _class_folder_root(root: Path, class_names: list[str], named_in: Path) -> Path:
    """The folder holding the class folders: ``root`` itself or a child such as ``UCF-101``
    (the first that holds a folder named like one of ``class_names``, case ignored)."""
    wanted = {name.lower() for name in class_names}
    for candidate in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        if any(c.is_dir() and c.name.lower() in wanted for c in candidate.iterdir()):
            return candidate
    raise FileNotFoundError(f"{root}: no folder holds a class folder named in {named_in}")


def _import_ucf101_layout(root: Path, out_dir: Path, drops: dict, split: int, num_workers: int) -> dict[str, list[dict]]:
    split_dir = root if (root / "classInd.txt").is_file() else next(root.glob("*/classInd.txt")).parent
    class_names = (split_dir / "classInd.txt").read_text().split()[1::2]
    video_root = _class_folder_root(root, class_names, split_dir / "classInd.txt")
    paths = video.import_ucf101(video_root, split_dir, out_dir / "ucf101", split=split, num_workers=num_workers, drops=drops)
    return {s: read_manifest(p, "video") for s, p in paths.items()}


def _import_hmdb51_layout(root: Path, out_dir: Path, drops: dict, split: int, num_workers: int) -> dict[str, list[dict]]:
    split_dir = video.find_hmdb51_split_dir(root) or root
    class_names = list(video.hmdb51_split_files(split_dir, split))
    video_root = _class_folder_root(root, class_names, split_dir) if class_names else root
    paths = video.import_hmdb51(video_root, split_dir, out_dir / "hmdb51", split=split, num_workers=num_workers, drops=drops)
    return {s: read_manifest(p, "video") for s, p in paths.items()}


def _import_kinetics_layout(root: Path, out_dir: Path, drops: dict, num_workers: int) -> dict[str, list[dict]]:
    clips = video.index_kinetics_clips(root)
    return {
        split: video.import_kinetics(
            csv_path, out_dir / f"{split}-imported.jsonl", clips=clips, num_workers=num_workers, drops=drops[split]
        )
        for split, csv_path in video.kinetics_split_files(video.find_kinetics_csv_dir(root) or root).items()
    }


def _import_list_layout(root: Path, out_dir: Path, fmt: str, drops: dict, num_workers: int) -> dict[str, list[dict]]:
    """The layouts with one file per split: manifest (``.jsonl``), csv and mmaction (``.txt``)."""
    ext = {"manifest": (".jsonl",), "csv": (".csv",), "mmaction": (".txt",)}[fmt]
    classes_file = root / "classes.txt"
    class_names = classes_file.read_text().split() if classes_file.is_file() else None
    records: dict[str, list[dict]] = {}
    for split in SPLITS:
        src = _video_split_file(root, split, ext)
        if src is None:
            continue
        out = out_dir / f"{split}-imported.jsonl"
        if fmt == "manifest":
            records[split] = read_manifest(src, "video")
        elif fmt == "csv":
            records[split] = video.import_csv(src, out, num_workers=num_workers, drops=drops[split])
        else:
            records[split] = video.import_mmaction_list(
                src, out, root=root, class_names=class_names, num_workers=num_workers, drops=drops[split]
            )
    return records


def import_video_corpus(
    root: Path, out_dir: Path, *, fmt: str = "auto", ucf101_split: int = 1, dev_fraction: float = 0.1, seed: int = 0,
    num_workers: int = 1,
) -> dict[str, Path]:
    """Imports a real video corpus into ``out_dir/{train,dev,test}.jsonl``.

    Layouts (``fmt``):
        manifest: ``train.jsonl``, ``test.jsonl`` and optionally ``dev.jsonl``.
        ucf101: class folders under ``root`` and ``classInd.txt``/``trainlist0N.txt``/
            ``testlist0N.txt`` in ``root`` or one of its sub-directories (``ucfTrainTestlist``).
        kinetics: ``train.csv``, ``validate.csv`` (or ``val.csv``; the dev split) and ``test.csv``
            with ``label,youtube_id,time_start,time_end`` columns, in ``root`` or
            ``root/annotations``; clips named ``<youtube_id>_<start:06d>_<end:06d>.mp4``
            anywhere under ``root``.
        hmdb51: class folders under ``root`` and ``<class>_test_split<N>.txt`` files (lines
            ``<video>.avi <0|1|2>``: 1 train, 2 test) in ``root`` or a sub-directory.
        csv: ``train.csv``, ``test.csv`` (and optional ``dev.csv``) with ``path,label`` rows.
        mmaction: ``train.txt``, ``test.txt`` (and optional ``dev.txt``) with ``path label`` lines;
            integer labels index ``classes.txt`` (one name per line) when present.

    When no dev split exists, a stratified ``dev_fraction`` of train becomes dev. What the
    import leaves out, with reasons, is written to ``out_dir/<split>.dropped.tsv``.

    Args:
        ucf101_split: The official split number (1-3) of UCF101 or HMDB51.
        num_workers: Threads probing videos.
    """
    root = Path(root)
    if fmt not in VIDEO_FORMATS:
        raise ValueError(f"unknown video corpus format {fmt!r}; choose one of {', '.join(VIDEO_FORMATS)}")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: corpus directory not found")
    fmt = detect_video_format(root) if fmt == "auto" else fmt
    out_dir = Path(out_dir)
    drops: dict[str, DropList] = {split: DropList() for split in SPLITS}
    if fmt == "ucf101":
        records = _import_ucf101_layout(root, out_dir, drops, ucf101_split, num_workers)
    elif fmt == "hmdb51":
        records = _import_hmdb51_layout(root, out_dir, drops, ucf101_split, num_workers)
    elif fmt == "kinetics":
        records = _import_kinetics_layout(root, out_dir, drops, num_workers)
    else:
        records = _import_list_layout(root, out_dir, fmt, drops, num_workers)
    for split in ("train", "test"):
        if split not in records:
            raise FileNotFoundError(f"{root}: no {split} split found ({fmt} layout)")
    if "dev" not in records:
        records["train"], records["dev"] = _split_dev(records["train"], dev_fraction, seed)
        log.info("no dev split in %s: using %d training clips as dev", root, len(records["dev"]))
    out = {}
    for split, recs in records.items():
        out[split] = write_manifest(out_dir / f"{split}.jsonl", recs, "video")
        report = write_dropped_report(out_dir / f"{split}.dropped.tsv", drops[split])
        log.info("%s %s: %d clips imported, %d left out (%s)", fmt, split, len(recs), len(drops[split]), report)
    return out
