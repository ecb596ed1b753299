"""Importers from common speech-corpus layouts to a speech manifest.

Each importer reads a corpus in place, writes ``out_manifest`` through
:func:`data_prep.manifest.write_manifest` and returns the records it wrote. Transcripts go
through :func:`data_prep.text_norm.normalize_text`; durations come from the audio headers.
A problem in one entry (missing audio, missing or empty transcript, unreadable file) is logged
with the file named and the entry skipped; a corpus that cannot be read at all raises
:class:`CorpusImportError`.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from data_prep.audio import AudioError, audio_info, load_audio
from data_prep.manifest import write_manifest
from data_prep.text_norm import normalize_text
from pipeline.errors import SeqrecError
from pipeline.io_utils import atomic_open

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".wma", ".aiff", ".aif",
     ".au", ".sph", ".webm", ".mka", ".caf", ".w64", ".rf64"}
)  # fmt: skip
_HEADER_FIRST = ("path", "filename", "file", "audio", "audio_filepath", "wav")


class CorpusImportError(SeqrecError, ValueError):
    """A corpus cannot be imported at all; the message names the file or folder."""


def _record(utt_id: str, path: Path, duration: float, text: str, speaker: str) -> dict[str, Any]:
    return {"id": utt_id, "audio_filepath": str(path.resolve()), "duration": round(duration, 4),
            "text": text, "speaker": speaker}  # fmt: skip


def _duration(path: Path) -> float | None:
    try:
        return audio_info(path).duration
    except AudioError as exc:
        log.warning("skipping %s", exc)
        return None


def _require_dir(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise CorpusImportError(f"{path}: {what} not found or not a directory")
    return path


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines with their numbers; raises CorpusImportError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
        log.warning("%s: not UTF-8; read as Latin-1", path)
    except OSError as exc:
        raise CorpusImportError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _write(out_manifest: Path, records: list[dict[str, Any]], source: Path, skipped: int) -> None:
    write_manifest(out_manifest, records, "speech")
    hours = sum(r["duration"] for r in records) / 3600.0
    log.info("%s: imported %d utterances (%.2f h) into %s; skipped %d",
             source, len(records), hours, out_manifest, skipped)  # fmt: skip


# ----------------------------------------------------------------------------- LibriSpeech


def import_librispeech(root: Path, out_manifest: Path) -> list[dict[str, Any]]:
    """Imports the LibriSpeech layout.

    ``<root>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` holds ``<id> TEXT`` lines, and
    each id has ``<id>.flac`` beside it (``.wav`` is accepted too).

    Args:
        root: A split folder such as ``LibriSpeech/dev-clean``.
        out_manifest: The manifest to write.

    Returns:
        The records written (absolute audio paths).

    Raises:
        CorpusImportError: ``root`` is not a folder or holds no ``*.trans.txt``.
    """
    root = _require_dir(Path(root), "LibriSpeech folder")
    transcripts = sorted(root.rglob("*.trans.txt"))
    if not transcripts:
        raise CorpusImportError(f"{root}: no <speaker>/<chapter>/*.trans.txt files found")
    records: list[dict[str, Any]] = []
    skipped = 0
    chapters: dict[Path, list[Path]] = {}
    for trans in transcripts:
        chapters.setdefault(trans.parent, []).append(trans)
    for chapter_dir, trans_files in chapters.items():
        # <root>/<speaker>/<chapter>/: the speaker is the folder above the chapter
        nested = len(chapter_dir.relative_to(root).parts) >= 2
        path_speaker = chapter_dir.parent.name if nested else None
        listed: set[str] = set()
        for trans in trans_files:
            for lineno, line in _read_lines(trans):
                utt_id, _, raw = line.partition(" ")
                listed.add(utt_id)
                text = normalize_text(raw)
                if not text:
                    log.warning("%s:%d: empty transcript for %s; skipping", trans, lineno, utt_id)
                    skipped += 1
                    continue
                candidates = [chapter_dir / f"{utt_id}{ext}" for ext in (".flac", ".wav")]
                audio = next((c for c in candidates if c.is_file()), None)
                if audio is None:
                    log.warning("%s: missing audio file (listed in %s:%d); skipping",
                                candidates[0], trans, lineno)  # fmt: skip
                    skipped += 1
                    continue
                duration = _duration(audio)
                if duration is None:
                    skipped += 1
                    continue
                speaker = path_speaker or utt_id.split("-")[0]
                records.append(_record(utt_id, audio, duration, text, speaker))
        for orphan in sorted(chapter_dir.glob("*.flac")):
            if orphan.stem not in listed:
                log.warning("%s: missing transcript (no line in %s); skipping",
                            orphan, ", ".join(t.name for t in trans_files))  # fmt: skip
                skipped += 1
    _write(Path(out_manifest), records, root, skipped)
    return records


# ----------------------------------------------------------------------------- Kaldi


def _kaldi_table(path: Path, *, required: bool) -> dict[str, str]:
    """Reads a Kaldi ``<key> <value...>`` file; later duplicates are logged and ignored."""
    if not path.is_file():
        if required:
            raise CorpusImportError(f"{path}: required Kaldi file not found")
        return {}
    table: dict[str, str] = {}
    for lineno, line in _read_lines(path):
        key, _, value = line.partition(" ")
        if key in table:
            log.warning("%s:%d: duplicate key %s; keeping the first", path, lineno, key)
            continue
        table[key] = value.strip()
    return table


def _resolve_scp_path(value: str, data_dir: Path, scp: Path) -> Path | str:
    """A wav.scp value as a file path, or a one-line reason why it cannot be used."""
    if value.endswith("|"):
        return (
            "piped command in wav.scp is not run (it would execute arbitrary shell code); "
            "convert the audio to files first, e.g. with the command itself"
        )
    if re.search(r"\.(ark|scp):\d+$", value) or value.startswith(("ark:", "scp:")):
        return "archive (ark) entries are not supported; extract the audio to files first"
    path = Path(value).expanduser()
    if not path.is_absolute():
        # Kaldi paths are relative to where the recipe runs; try the data dir's recipe root too.
        for base in (Path.cwd(), data_dir, data_dir.parent, data_dir.parent.parent, scp.parent):
            if (base / path).exists():
                return base / path
    return path


def import_kaldi(
    data_dir: Path, out_manifest: Path, *, segments_dir: Path | None = None
) -> list[dict[str, Any]]:
    """Imports a Kaldi data directory.

    Reads ``wav.scp`` (``<recording> <path>``), ``text`` (``<utt> TEXT``), and when present
    ``utt2spk`` (speaker "unknown" otherwise) and ``segments`` (``<utt> <recording> <start>
    <end>``; an end of -1 means the end of the recording). With segments, each segment is cut to
    a 16-bit wav at the recording's own rate under ``segments_dir`` (kept across runs).
    Piped ``wav.scp`` commands are refused per entry rather than run.

    Args:
        data_dir: The Kaldi data dir, e.g. ``data/train``.
        out_manifest: The manifest to write.
        segments_dir: Where cut segments go; default ``out_manifest.parent / "segments"``.

    Returns:
        The records written.

    Raises:
        CorpusImportError: ``data_dir``, ``wav.scp`` or ``text`` is missing.
    """
    data_dir = _require_dir(Path(data_dir), "Kaldi data dir")
    out_manifest = Path(out_manifest)
    scp_file = data_dir / "wav.scp"
    wav_scp = _kaldi_table(scp_file, required=True)
    texts = _kaldi_table(data_dir / "text", required=True)
    utt2spk = _kaldi_table(data_dir / "utt2spk", required=False)
    segments_file = data_dir / "segments"
    records: list[dict[str, Any]] = []
    skipped = 0

    paths: dict[str, Path] = {}
    for rec_id, value in wav_scp.items():
        resolved = _resolve_scp_path(value, data_dir, scp_file)
        if isinstance(resolved, str):
            log.warning("%s: entry %s: %s; skipping", scp_file, rec_id, resolved)
        elif not resolved.is_file():
            log.warning("%s: missing audio file (wav.scp entry %s); skipping", resolved, rec_id)
        else:
            paths[rec_id] = resolved

    def text_of(utt: str) -> str | None:
        if utt not in texts:
            log.warning("%s: missing transcript for %s; skipping", data_dir / "text", utt)
            return None
        text = normalize_text(texts[utt])
        if not text:
            log.warning("%s: empty transcript for %s; skipping", data_dir / "text", utt)
            return None
        return text

    if not segments_file.is_file():
        for rec_id in wav_scp:
            text = text_of(rec_id)
            path = paths.get(rec_id)
            duration = _duration(path) if path is not None and text is not None else None
            if duration is None or text is None:
                skipped += 1
                continue
            records.append(_record(rec_id, path, duration, text, utt2spk.get(rec_id, "unknown")))
        _write(out_manifest, records, data_dir, skipped)
        return records

    seg_dir = Path(segments_dir) if segments_dir is not None else out_manifest.parent / "segments"
    by_recording: dict[str, list[tuple[str, float, float]]] = {}
    for lineno, line in _read_lines(segments_file):
        parts = line.split()
        try:
            utt, rec, start, end = parts[0], parts[1], float(parts[2]), float(parts[3])
            if len(parts) != 4 or start < 0 or (end != -1 and end <= start):
                raise ValueError
        except (ValueError, IndexError):
            log.warning("%s:%d: bad segment line %r; skipping", segments_file, lineno, line)
            skipped += 1
            continue
        by_recording.setdefault(rec, []).append((utt, start, end))
    for rec, segs in by_recording.items():
        wanted = [(utt, s, e, text) for utt, s, e in segs if (text := text_of(utt)) is not None]
        skipped += len(segs) - len(wanted)
        if rec not in paths:
            if rec not in wav_scp:
                log.warning("%s: recording %s is not in wav.scp; skipping %d segment(s)",
                            segments_file, rec, len(wanted))  # fmt: skip
            skipped += len(wanted)
            continue
        cut = _cut_segments(paths[rec], wanted, seg_dir)
        skipped += len(wanted) - len(cut)
        for utt, path, duration, text in cut:
            records.append(_record(utt, path, duration, text, utt2spk.get(utt, "unknown")))
    records.sort(key=lambda r: r["id"])  # Kaldi order
    _write(out_manifest, records, data_dir, skipped)
    return records


def _cut_segments(
    source: Path, segs: list[tuple[str, float, float, str]], seg_dir: Path
) -> list[tuple[str, Path, float, str]]:
    """Cuts segments of one recording to wavs; reuses cuts already on disk with the right length."""
    try:
        info = audio_info(source)
    except AudioError as exc:
        log.warning("skipping %d segment(s): %s", len(segs), exc)
        return []
    sr = info.sample_rate
    out: list[tuple[str, Path, float, str]] = []
    wave: np.ndarray | None = None  # decoded once, on the first segment not already cut
    for utt, start, end, text in segs:
        first = round(start * sr)
        last = info.frames if end == -1 else min(round(end * sr), info.frames)
        if last - first <= 0:
            log.warning("%s: segment %s lies outside the recording (%.2f s); skipping",
                        source, utt, info.duration)  # fmt: skip
            continue
        target = seg_dir / f"{_safe_name(utt)}.wav"
        if not _has_frames(target, sr, last - first):
            if wave is None:
                try:
                    wave = load_audio(source, target_sr=sr).numpy()
                except AudioError as exc:
                    log.warning("skipping %d segment(s): %s", len(segs) - len(out), exc)
                    return out
            piece = wave[first:last]
            if piece.size == 0:
                log.warning("%s: segment %s holds no samples; skipping", source, utt)
                continue
            with atomic_open(target, "wb") as fh:
                sf.write(fh, piece, sr, subtype="PCM_16", format="WAV")
            duration = piece.size / sr
        else:
            duration = (last - first) / sr
        out.append((utt, target, duration, text))
    return out


def _has_frames(path: Path, sr: int, frames: int) -> bool:
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, OSError):
        return False
    return info.samplerate == sr and abs(info.frames - frames) <= 1


def _safe_name(utt: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", utt)


# ----------------------------------------------------------------------------- audio folder


def import_audio_folder(folder: Path, out_manifest: Path) -> list[dict[str, Any]]:
    """Imports a folder of audio files described by ``transcripts.tsv``.

    Each line is ``filename<TAB>text`` or ``filename<TAB>text<TAB>speaker`` (speaker "unknown"
    otherwise); filenames are relative to the folder and may name subfolders. A first line
    ``path<TAB>text`` or ``filename<TAB>text`` is a header. The id is the filename without its
    extension, with ``/`` turned into ``-``.

    Args:
        folder: The folder holding the audio and ``transcripts.tsv``.
        out_manifest: The manifest to write.

    Returns:
        The records written.

    Raises:
        CorpusImportError: the folder or its ``transcripts.tsv`` is missing.
    """
    folder = _require_dir(Path(folder), "audio folder")
    tsv = folder / "transcripts.tsv"
    if not tsv.is_file():
        raise CorpusImportError(f"{tsv}: transcripts.tsv not found (lines: filename<TAB>text)")
    lines = _read_lines(tsv)
    if lines:
        cols = [c.strip().lower() for c in lines[0][1].split("\t")]
        if len(cols) >= 2 and cols[0] in _HEADER_FIRST and cols[1] in ("text", "transcript"):
            lines = lines[1:]
    records: list[dict[str, Any]] = []
    listed: set[Path] = set()
    seen_ids: set[str] = set()
    skipped = 0
    for lineno, line in lines:
        cols = line.split("\t")
        if len(cols) < 2:
            log.warning("%s:%d: expected filename<TAB>text, got %r; skipping", tsv, lineno, line)
            skipped += 1
            continue
        rel = cols[0].strip()
        speaker = cols[2].strip() if len(cols) > 2 and cols[2].strip() else "unknown"
        audio = (folder / rel).resolve()
        listed.add(audio)
        utt_id = Path(rel).with_suffix("").as_posix().replace("/", "-")
        text = normalize_text(cols[1])
        if utt_id in seen_ids:
            log.warning("%s:%d: duplicate id %s; skipping", tsv, lineno, utt_id)
            skipped += 1
            continue
        if not text:
            log.warning("%s:%d: empty transcript for %s; skipping", tsv, lineno, rel)
            skipped += 1
            continue
        if not audio.is_file():
            log.warning("%s: missing audio file (listed in %s:%d); skipping", audio, tsv, lineno)
            skipped += 1
            continue
        duration = _duration(audio)
        if duration is None:
            skipped += 1
            continue
        seen_ids.add(utt_id)
        records.append(_record(utt_id, audio, duration, text, speaker))
    for dirpath, _, files in os.walk(folder):
        for name in sorted(files):
            path = (Path(dirpath) / name).resolve()
            if path.suffix.lower() in AUDIO_EXTENSIONS and path not in listed:
                log.warning("%s: missing transcript (not in %s); skipping", path, tsv.name)
                skipped += 1
    _write(Path(out_manifest), records, folder, skipped)
    return records
