"""Importing a whole real corpus directory (train/dev/test) in any supported layout.

A corpus directory holds one entry per split, named after the split or starting with it
(``train``, ``train-clean-100``, ``dev-clean``, ``test_other`` ...). Several entries for one
split are merged. Each entry is one of:

- ``<split>.jsonl``: a NeMo-style manifest (``audio_filepath``, ``duration``, ``text``);
- a Kaldi data dir (``wav.scp``, ``text``, optional ``segments``/``utt2spk``);
- a folder of audio files with ``transcripts.tsv``;
- a LibriSpeech-layout tree (``<speaker>/<chapter>/<speaker>-<chapter>.trans.txt``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from data_prep.manifest import read_manifest, write_manifest

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
FORMATS = ("auto", "manifest", "librispeech", "kaldi", "folder")


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


def _import_entry(entry: Path, fmt: str, out_manifest: Path) -> list[dict]:
    from data_prep.importers import speech

    if fmt == "manifest":
        return read_manifest(entry, "speech")
    if fmt == "kaldi":
        return speech.import_kaldi(
            entry, out_manifest, segments_dir=out_manifest.parent / f"{entry.name}-segments"
        )
    if fmt == "folder":
        return speech.import_audio_folder(entry, out_manifest)
    if fmt == "librispeech":
        return speech.import_librispeech(entry, out_manifest)
    raise ValueError(f"unknown corpus format {fmt!r}; choose one of {', '.join(FORMATS)}")


def import_speech_corpus(root: Path, out_dir: Path, *, fmt: str = "auto") -> dict[str, Path]:
    """Imports every split of a corpus directory into ``out_dir/<split>.jsonl``.

    Args:
        root: The corpus directory.
        out_dir: Where manifests (and cut Kaldi segments) are written.
        fmt: One of ``auto, manifest, librispeech, kaldi, folder``.

    Returns:
        Split name -> manifest path, for the splits found.
    """
    root = Path(root)
    if fmt not in FORMATS:
        raise ValueError(f"unknown corpus format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: corpus directory not found")
    out: dict[str, Path] = {}
    for split in SPLITS:
        entries = _split_entries(root, split)
        if not entries:
            log.warning("%s: no entry for split %r", root, split)
            continue
        records: list[dict] = []
        for entry in entries:
            entry_fmt = detect_format(entry) if fmt == "auto" else fmt
            log.info("importing %s (%s)", entry, entry_fmt)
            records += _import_entry(entry, entry_fmt, out_dir / f"{split}-{entry.name}.jsonl")
        out[split] = write_manifest(out_dir / f"{split}.jsonl", records, "speech")
    return out
