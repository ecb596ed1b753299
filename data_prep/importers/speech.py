"""Importers from common speech-corpus layouts to a speech manifest.

Each importer reads a corpus in place, writes ``out_manifest`` through
:func:`data_prep.manifest.write_manifest` and returns the records it wrote. Transcripts go
through :func:`data_prep.text_norm.normalize_text`; durations come from the audio headers.
A problem in one entry (missing audio, missing or empty transcript, unreadable file) is logged
with the file named and the entry skipped; a corpus that cannot be read at all raises
:class:`CorpusImportError`.
"""

from __future__ import annotations

import json
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
from data_prep.validate import (
    BAD_RECORD,
    DUPLICATE_ID,
    EMPTY_TEXT,
    MISSING_FILE,
    NO_TRANSCRIPT,
    UNREADABLE,
    DropList,
)
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


def _duration(path: Path, drops: DropList, item: str) -> float | None:
    try:
        return audio_info(path).duration
    except AudioError as exc:
        drops.drop(item, f"{UNREADABLE}: {exc}", log)
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


def import_librispeech(root: Path, out_manifest: Path, drops: DropList | None = None) -> list[dict[str, Any]]:
    """Imports the LibriSpeech layout.

    ``<root>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` holds ``<id> TEXT`` lines, and
    each id has ``<id>.flac`` beside it (``.wav`` is accepted too).

    Args:
        root: A split folder such as ``LibriSpeech/dev-clean``.
        out_manifest: The manifest to write.
        drops: Collects what is left out, with reasons (see :class:`DropList`).

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
    drops = DropList() if drops is None else drops
    first_drop = len(drops)
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
                    drops.drop(utt_id, f"{EMPTY_TEXT}: {trans}:{lineno}", log)
                    continue
                candidates = [chapter_dir / f"{utt_id}{ext}" for ext in (".flac", ".wav")]
                audio = next((c for c in candidates if c.is_file()), None)
                if audio is None:
                    drops.drop(utt_id, f"{MISSING_FILE}: {candidates[0]} (listed in {trans}:{lineno})", log)
                    continue
                duration = _duration(audio, drops, utt_id)
                if duration is None:
                    continue
                speaker = path_speaker or utt_id.split("-")[0]
                records.append(_record(utt_id, audio, duration, text, speaker))
        for orphan in sorted(chapter_dir.glob("*.flac")):
            if orphan.stem not in listed:
                drops.drop(orphan, f"{NO_TRANSCRIPT}: no line in {', '.join(t.name for t in trans_files)}", log)
    _write(Path(out_manifest), records, root, len(drops) - first_drop)
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
    data_dir: Path, out_manifest: Path, *, segments_dir: Path | None = None, drops: DropList | None = None
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
        drops: Collects what is left out, with reasons (see :class:`DropList`).

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
    drops = DropList() if drops is None else drops
    first_drop = len(drops)
    unusable: dict[str, str] = {}  # recording -> why its audio cannot be used

    paths: dict[str, Path] = {}
    for rec_id, value in wav_scp.items():
        resolved = _resolve_scp_path(value, data_dir, scp_file)
        if isinstance(resolved, str):
            unusable[rec_id] = f"{BAD_RECORD}: {scp_file} entry {rec_id}: {resolved}"
        elif not resolved.is_file():
            unusable[rec_id] = f"{MISSING_FILE}: {resolved} (wav.scp entry {rec_id})"
        else:
            paths[rec_id] = resolved

    def text_of(utt: str) -> str | None:
        if utt not in texts:
            drops.drop(utt, f"{EMPTY_TEXT}: missing transcript for {utt} in {data_dir / 'text'}", log)
            return None
        text = normalize_text(texts[utt])
        if not text:
            drops.drop(utt, f"{EMPTY_TEXT}: empty transcript for {utt} in {data_dir / 'text'}", log)
            return None
        return text

    if not segments_file.is_file():
        for rec_id in wav_scp:
            if rec_id in unusable:
                drops.drop(rec_id, unusable[rec_id], log)
                continue
            text = text_of(rec_id)
            if text is None:
                continue
            duration = _duration(paths[rec_id], drops, rec_id)
            if duration is not None:
                records.append(_record(rec_id, paths[rec_id], duration, text, utt2spk.get(rec_id, "unknown")))
        _write(out_manifest, records, data_dir, len(drops) - first_drop)
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
            drops.drop(f"{segments_file}:{lineno}", f"{BAD_RECORD}: bad segment line {line!r}", log)
            continue
        by_recording.setdefault(rec, []).append((utt, start, end))
    for rec, segs in by_recording.items():
        wanted = [(utt, s, e, text) for utt, s, e in segs if (text := text_of(utt)) is not None]
        if rec not in paths:
            why = unusable.get(rec, f"{MISSING_FILE}: recording {rec} is not in {scp_file}")
            for utt, *_ in wanted:
                drops.drop(utt, why, log)
            continue
        for utt, path, duration, text in _cut_segments(paths[rec], wanted, seg_dir, drops):
            records.append(_record(utt, path, duration, text, utt2spk.get(utt, "unknown")))
    records.sort(key=lambda r: r["id"])  # Kaldi order
    _write(out_manifest, records, data_dir, len(drops) - first_drop)
    return records


def _cut_segments(
    source: Path, segs: list[tuple[str, float, float, str]], seg_dir: Path, drops: DropList
) -> list[tuple[str, Path, float, str]]:
    """Cuts segments of one recording to wavs; reuses cuts already on disk with the right length."""
    try:
        info = audio_info(source)
    except AudioError as exc:
        for utt, *_ in segs:
            drops.drop(utt, f"{UNREADABLE}: {exc}", log)
        return []
    sr = info.sample_rate
    out: list[tuple[str, Path, float, str]] = []
    wave: np.ndarray | None = None  # decoded once, on the first segment not already cut
    for utt, start, end, text in segs:
        first = round(start * sr)
        last = info.frames if end == -1 else min(round(end * sr), info.frames)
        if last - first <= 0:
            drops.drop(utt, f"{BAD_RECORD}: segment {utt} lies outside the recording {source} ({info.duration:.2f} s)", log)
            continue
        target = seg_dir / f"{_safe_name(utt)}.wav"
        if not _has_frames(target, sr, last - first):
            if wave is None:
                try:
                    wave = load_audio(source, target_sr=sr).numpy()
                except AudioError as exc:
                    done = {u for u, *_ in out}
                    for u, *_ in segs:
                        if u not in done:
                            drops.drop(u, f"{UNREADABLE}: {exc}", log)
                    return out
            piece = wave[first:last]
            if piece.size == 0:
                drops.drop(utt, f"{BAD_RECORD}: segment {utt} of {source} holds no samples", log)
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


def import_audio_folder(folder: Path, out_manifest: Path, drops: DropList | None = None) -> list[dict[str, Any]]:
    """Imports a folder of audio files described by ``transcripts.tsv``.

    Each line is ``filename<TAB>text`` or ``filename<TAB>text<TAB>speaker`` (speaker "unknown"
    otherwise); filenames are relative to the folder and may name subfolders. A first line
    ``path<TAB>text`` or ``filename<TAB>text`` is a header. The id is the filename without its
    extension, with ``/`` turned into ``-``.

    Args:
        folder: The folder holding the audio and ``transcripts.tsv``.
        out_manifest: The manifest to write.
        drops: Collects what is left out, with reasons (see :class:`DropList`).

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
    drops = DropList() if drops is None else drops
    first_drop = len(drops)
    for lineno, line in lines:
        cols = line.split("\t")
        if len(cols) < 2:
            drops.drop(f"{tsv}:{lineno}", f"{BAD_RECORD}: expected filename<TAB>text, got {line!r}", log)
            continue
        rel = cols[0].strip()
        speaker = cols[2].strip() if len(cols) > 2 and cols[2].strip() else "unknown"
        audio = (folder / rel).resolve()
        listed.add(audio)
        utt_id = Path(rel).with_suffix("").as_posix().replace("/", "-")
        text = normalize_text(cols[1])
        if utt_id in seen_ids:
            drops.drop(utt_id, f"{DUPLICATE_ID}: {tsv}:{lineno}", log)
            continue
        if not text:
            drops.drop(utt_id, f"{EMPTY_TEXT}: empty transcript for {rel} ({tsv}:{lineno})", log)
            continue
        if not audio.is_file():
            drops.drop(utt_id, f"{MISSING_FILE}: {audio} (listed in {tsv}:{lineno})", log)
            continue
        duration = _duration(audio, drops, utt_id)
        if duration is None:
            continue
        seen_ids.add(utt_id)
        records.append(_record(utt_id, audio, duration, text, speaker))
    for dirpath, _, files in os.walk(folder):
        for name in sorted(files):
            path = (Path(dirpath) / name).resolve()
            if path.suffix.lower() in AUDIO_EXTENSIONS and path not in listed:
                drops.drop(path, f"{NO_TRANSCRIPT}: not in {tsv.name}", log)
    _write(Path(out_manifest), records, folder, len(drops) - first_drop)
    return records


# ----------------------------------------------------------------------------- NeMo manifest

#: Fields a NeMo manifest line gives meaning to; every other field is carried over unchanged.
_NEMO_FIELDS = ("id", "audio_filepath", "duration", "offset", "text", "speaker")


def _manifest_audio_path(value: str, manifest: Path) -> Path:
    """An ``audio_filepath`` as NeMo resolves it: absolute, or relative to the manifest's folder
    (falling back to the working directory when only that holds the file)."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    beside = manifest.parent / path
    return beside if beside.exists() or not path.exists() else path


def import_nemo_manifest(
    manifest: Path, out_manifest: Path, *, segments_dir: Path | None = None, drops: DropList | None = None
) -> list[dict[str, Any]]:
    """Imports a NeMo-style JSONL manifest, as NeMo's own scripts write it.

    Each line is a JSON object with ``audio_filepath`` and ``text`` (``duration`` is read from
    the audio header instead). Optional: ``id`` (default: the audio file's stem, made unique),
    ``speaker`` (default ``"unknown"``), and ``offset`` with ``duration``, which select a segment
    of a longer recording; segments are cut to wavs under ``segments_dir`` as for Kaldi.
    Every other field (``lang``, ``pnc`` ...) is kept. Texts go through
    :func:`~data_prep.text_norm.normalize_text`; how many changed and how many were dropped is logged.

    Args:
        manifest: The ``.jsonl`` file.
        out_manifest: The manifest to write.
        segments_dir: Where cut segments go; default ``out_manifest.parent / "segments"``.
        drops: Collects what is left out, with reasons (see :class:`DropList`).

    Returns:
        The records written.

    Raises:
        CorpusImportError: the manifest cannot be read.
    """
    manifest, out_manifest = Path(manifest), Path(out_manifest)
    if not manifest.is_file():
        raise CorpusImportError(f"{manifest}: manifest not found")
    drops = DropList() if drops is None else drops
    first_drop = len(drops)
    seg_dir = Path(segments_dir) if segments_dir is not None else out_manifest.parent / "segments"
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    normalised = 0
    for lineno, line in _read_lines(manifest):
        where = f"{manifest}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            drops.drop(where, f"{BAD_RECORD}: not a JSON object ({exc.msg})", log)
            continue
        if not isinstance(obj, dict):
            drops.drop(where, f"{BAD_RECORD}: not a JSON object", log)
            continue
        missing = [k for k in ("audio_filepath", "text") if not isinstance(obj.get(k), str)]
        if missing or not obj["audio_filepath"].strip():
            drops.drop(where, f"{BAD_RECORD}: missing field(s) {', '.join(missing) or 'audio_filepath'}", log)
            continue
        audio = _manifest_audio_path(obj["audio_filepath"], manifest)
        segment = _nemo_segment(obj)
        if isinstance(segment, str):
            drops.drop(where, f"{BAD_RECORD}: {segment}", log)
            continue
        utt_id = str(obj["id"]) if obj.get("id") not in (None, "") else _unique_id(_nemo_id(audio, segment), seen)
        if utt_id in seen:
            drops.drop(utt_id, f"{DUPLICATE_ID}: {where}", log)
            continue
        text = normalize_text(obj["text"])
        normalised += text != obj["text"]
        if not text:
            drops.drop(utt_id, f"{EMPTY_TEXT}: {where}", log)
            continue
        if not audio.is_file():
            drops.drop(utt_id, f"{MISSING_FILE}: {audio} (listed in {where})", log)
            continue
        if segment is None:
            duration = _duration(audio, drops, utt_id)
            cut = [] if duration is None else [(utt_id, audio, duration, text)]
        else:
            start, length = segment
            cut = _cut_segments(audio, [(utt_id, start, start + length, text)], seg_dir, drops)
        seen.add(utt_id)
        extra = {k: v for k, v in obj.items() if k not in _NEMO_FIELDS}
        speaker = str(obj["speaker"]) if obj.get("speaker") not in (None, "") else "unknown"
        for _, path, duration, text in cut:
            records.append({**extra, **_record(utt_id, path, duration, text, speaker)})
    log.info("%s: %d transcripts normalised, %d lines dropped", manifest, normalised, len(drops) - first_drop)
    _write(out_manifest, records, manifest, len(drops) - first_drop)
    return records


def _nemo_segment(obj: dict[str, Any]) -> tuple[float, float] | None | str:
    """``(offset, duration)`` when the line selects a segment, None for a whole file, or why not."""
    if obj.get("offset") in (None, 0, 0.0):
        return None
    offset, duration = obj.get("offset"), obj.get("duration")
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) or offset < 0:
        return f"offset {offset!r} is not a number of seconds"
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration <= 0:
        return f"a segment at offset {offset} needs a positive duration, got {duration!r}"
    return float(offset), float(duration)


def _nemo_id(audio: Path, segment: tuple[float, float] | None) -> str:
    return audio.stem if segment is None else f"{audio.stem}-{round(segment[0] * 100):07d}"


def _unique_id(base: str, seen: set[str]) -> str:
    utt_id, n = base, 1
    while utt_id in seen:
        n += 1
        utt_id = f"{base}-{n}"
    return utt_id


# ----------------------------------------------------------------------------- Common Voice

#: Common Voice columns carried into the manifest when they are filled in.
_CV_EXTRA = ("locale", "gender", "age", "accents", "variant")


def import_common_voice(
    root: Path, split_tsv: Path, out_manifest: Path, drops: DropList | None = None
) -> list[dict[str, Any]]:
    """Imports one split of a Common Voice release (``cv-corpus-*/<locale>/``).

    ``split_tsv`` (``train.tsv``, ``dev.tsv``, ``test.tsv``) has a header row with at least
    ``path`` (an mp3 under ``root/clips/``) and ``sentence``; ``client_id`` becomes the speaker,
    and the locale, gender, age and accent columns are kept when filled in. Fields are
    tab-separated and never quoted, so a sentence may hold quote characters.

    Args:
        root: The locale folder holding ``clips/`` and the split files.
        split_tsv: The split file.
        out_manifest: The manifest to write.
        drops: Collects what is left out, with reasons (see :class:`DropList`).

    Returns:
        The records written.

    Raises:
        CorpusImportError: the split file is missing or has no ``path``/``sentence`` columns.
    """
    root, split_tsv = Path(root), Path(split_tsv)
    if not split_tsv.is_file():
        raise CorpusImportError(f"{split_tsv}: Common Voice split file not found")
    lines = _read_lines(split_tsv)
    header = lines[0][1].split("\t") if lines else []
    if "path" not in header or "sentence" not in header:
        raise CorpusImportError(f"{split_tsv}:1: expected a header with 'path' and 'sentence' columns")
    drops = DropList() if drops is None else drops
    first_drop = len(drops)
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for lineno, line in lines[1:]:
        row = dict(zip(header, line.split("\t"), strict=False))
        rel = row.get("path", "").strip()
        if not rel:
            drops.drop(f"{split_tsv}:{lineno}", f"{BAD_RECORD}: no path", log)
            continue
        utt_id = Path(rel).stem
        if utt_id in seen:
            drops.drop(utt_id, f"{DUPLICATE_ID}: {split_tsv}:{lineno}", log)
            continue
        text = normalize_text(row.get("sentence", ""))
        if not text:
            drops.drop(utt_id, f"{EMPTY_TEXT}: {split_tsv}:{lineno}", log)
            continue
        audio = root / "clips" / rel
        if not audio.is_file():
            drops.drop(utt_id, f"{MISSING_FILE}: {audio} (listed in {split_tsv}:{lineno})", log)
            continue
        duration = _duration(audio, drops, utt_id)
        if duration is None:
            continue
        seen.add(utt_id)
        extra = {k: row[k].strip() for k in _CV_EXTRA if row.get(k, "").strip()}
        records.append({**extra, **_record(utt_id, audio, duration, text, row.get("client_id", "").strip() or "unknown")})
    _write(Path(out_manifest), records, split_tsv, len(drops) - first_drop)
    return records
