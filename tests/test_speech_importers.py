"""Tests for data_prep.importers.speech: LibriSpeech, Kaldi and audio-folder layouts."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.importers.speech import (
    CorpusImportError,
    import_audio_folder,
    import_kaldi,
    import_librispeech,
)
from data_prep.manifest import read_manifest


def _audio(path: Path, seconds: float, sr: int = 16000, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), sr, format=fmt)
    return path


def _warnings(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


# ----------------------------------------------------------------------------- LibriSpeech


@pytest.fixture
def libri(tmp_path: Path) -> Path:
    root = tmp_path / "LibriSpeech" / "dev-clean"
    ch = root / "84" / "121123"
    _audio(ch / "84-121123-0000.flac", 1.0)
    _audio(ch / "84-121123-0001.flac", 0.5)
    _audio(ch / "84-121123-0009.flac", 0.5)  # no transcript line
    (ch / "84-121123-0000.trans.txt").write_text("")  # a stray file the glob must not confuse
    (ch / "84-121123.trans.txt").write_text(
        "84-121123-0000 GO, DO YOU HEAR\n84-121123-0001 IT'S 2 O'CLOCK\n"
        "84-121123-0002 THIS ONE HAS NO AUDIO\n"
    )
    ch2 = root / "174" / "50561"
    _audio(ch2 / "174-50561-0000.flac", 0.75, sr=8000)
    (ch2 / "174-50561.trans.txt").write_text("174-50561-0000 FORGOTTEN TOO\n")
    return root


def test_librispeech(libri: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "m" / "dev.jsonl"
    with caplog.at_level(logging.WARNING):
        recs = import_librispeech(libri, out)
    by_id = {r["id"]: r for r in recs}
    assert set(by_id) == {"84-121123-0000", "84-121123-0001", "174-50561-0000"}
    assert by_id["84-121123-0000"]["text"] == "go do you hear"
    assert by_id["84-121123-0001"]["text"] == "it's two o'clock"
    assert by_id["84-121123-0001"]["duration"] == pytest.approx(0.5)
    assert by_id["174-50561-0000"]["duration"] == pytest.approx(0.75)
    assert by_id["174-50561-0000"]["speaker"] == "174"
    assert by_id["84-121123-0000"]["speaker"] == "84"
    warned = _warnings(caplog)
    assert "84-121123-0002.flac (listed in" in warned
    assert "84-121123-0009.flac: no transcript" in warned
    back = read_manifest(out, "speech")
    assert [r["id"] for r in back] == [r["id"] for r in recs]
    assert Path(back[0]["audio_filepath"]).is_file()
    assert "LibriSpeech" in out.read_text()  # stored relative to the manifest


def test_librispeech_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusImportError, match="not found"):
        import_librispeech(tmp_path / "nope", tmp_path / "m.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusImportError, match="trans.txt"):
        import_librispeech(tmp_path / "empty", tmp_path / "m.jsonl")


def test_librispeech_unreadable_audio(libri: Path, tmp_path: Path) -> None:
    (libri / "84" / "121123" / "84-121123-0001.flac").write_text("garbage, not flac")
    recs = import_librispeech(libri, tmp_path / "m.jsonl")
    assert "84-121123-0001" not in {r["id"] for r in recs}
    assert len(recs) == 2


# ----------------------------------------------------------------------------- Kaldi


@pytest.fixture
def kaldi(tmp_path: Path) -> Path:
    root = tmp_path / "recipe"
    data = root / "data" / "train"
    data.mkdir(parents=True)
    _audio(root / "audio" / "rec1.wav", 1.0)
    abs_wav = _audio(tmp_path / "elsewhere" / "rec2.flac", 2.0, sr=8000)
    (data / "wav.scp").write_text(
        "rec1 audio/rec1.wav\n"  # relative to the recipe root
        f"rec2 {abs_wav}\n"
        "rec3 sph2pipe -f wav -p -c 1 /corpora/x.sph |\n"
        "rec4 /no/such/file.wav\n"
    )
    (data / "text").write_text(
        "rec1 Hello THERE, friend\nrec2 the 3rd one\nrec3 piped\nrec4 missing file\n"
    )
    (data / "utt2spk").write_text("rec1 spkA\nrec2 spkB\nrec3 spkC\nrec4 spkD\n")
    return data


def test_kaldi_without_segments(
    kaldi: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        recs = import_kaldi(kaldi, tmp_path / "out" / "train.jsonl")
    assert [(r["id"], r["text"], r["speaker"]) for r in recs] == [
        ("rec1", "hello there friend", "spkA"),
        ("rec2", "the third one", "spkB"),
    ]
    assert recs[1]["duration"] == pytest.approx(2.0)
    warned = _warnings(caplog)
    assert "entry rec3: piped command" in warned
    assert "missing file: /no/such/file.wav" in warned
    assert len(read_manifest(tmp_path / "out" / "train.jsonl", "speech")) == 2


def test_kaldi_missing_files(tmp_path: Path, kaldi: Path) -> None:
    (kaldi / "text").unlink()
    with pytest.raises(CorpusImportError, match="text: required Kaldi file"):
        import_kaldi(kaldi, tmp_path / "m.jsonl")
    (kaldi / "wav.scp").unlink()
    with pytest.raises(CorpusImportError, match="wav.scp"):
        import_kaldi(kaldi, tmp_path / "m.jsonl")


def test_kaldi_no_utt2spk(kaldi: Path, tmp_path: Path) -> None:
    (kaldi / "utt2spk").unlink()
    recs = import_kaldi(kaldi, tmp_path / "m.jsonl")
    assert {r["speaker"] for r in recs} == {"unknown"}


def test_kaldi_segments(kaldi: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (kaldi / "segments").write_text(
        "rec1-a rec1 0.00 0.40\n"
        "rec1-b rec1 0.40 -1\n"
        "rec2-a rec2 0.5 1.25\n"
        "rec2-late rec2 5.0 6.0\n"  # beyond the 2 s recording
        "rec2-notext rec2 0.0 0.5\n"
        "bad line\n"
        "rec4-a rec4 0 1\n"  # recording file missing
    )
    (kaldi / "text").write_text(
        "rec1-a first part\nrec1-b second part\nrec2-a third\nrec2-late late\nrec4-a gone\n"
    )
    (kaldi / "utt2spk").write_text("rec1-a A\nrec1-b A\nrec2-a B\n")
    out = tmp_path / "out" / "train.jsonl"
    with caplog.at_level(logging.WARNING):
        recs = import_kaldi(kaldi, out)
    by_id = {r["id"]: r for r in recs}
    assert sorted(by_id) == ["rec1-a", "rec1-b", "rec2-a"]
    assert by_id["rec1-a"]["duration"] == pytest.approx(0.4)
    assert by_id["rec1-b"]["duration"] == pytest.approx(0.6)
    assert by_id["rec2-a"]["duration"] == pytest.approx(0.75)
    assert by_id["rec2-a"]["speaker"] == "B" and by_id["rec2-a"]["text"] == "third"
    seg = Path(by_id["rec2-a"]["audio_filepath"])
    assert seg.parent == tmp_path / "out" / "segments"
    info = sf.info(str(seg))
    assert (info.samplerate, info.frames, info.subtype) == (8000, 6000, "PCM_16")
    # the cut holds the right samples
    src, _ = sf.read(kaldi.parent.parent.parent / "elsewhere" / "rec2.flac", dtype="float32")
    cut, _ = sf.read(seg, dtype="float32")
    np.testing.assert_allclose(cut, src[4000:10000], atol=1e-4)
    warned = _warnings(caplog)
    assert "bad segment line" in warned and "missing transcript for rec2-notext" in warned
    assert "rec2-late lies outside the recording" in warned
    # rerun reuses the cuts
    mtime = seg.stat().st_mtime_ns
    again = import_kaldi(kaldi, out)
    assert again == recs and seg.stat().st_mtime_ns == mtime


def test_kaldi_segments_dir_option(kaldi: Path, tmp_path: Path) -> None:
    (kaldi / "segments").write_text("rec1-a rec1 0.1 0.3\n")
    (kaldi / "text").write_text("rec1-a some words\n")
    recs = import_kaldi(kaldi, tmp_path / "m.jsonl", segments_dir=tmp_path / "cuts")
    assert Path(recs[0]["audio_filepath"]) == tmp_path / "cuts" / "rec1-a.wav"
    assert recs[0]["speaker"] == "unknown"  # rec1-a is not in utt2spk


# ----------------------------------------------------------------------------- audio folder


def test_audio_folder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "mydata"
    _audio(folder / "a.wav", 1.0)
    _audio(folder / "sub" / "b.flac", 0.5, sr=22050)
    _audio(folder / "c.ogg", 0.5, fmt="OGG")
    _audio(folder / "untranscribed.wav", 0.5)
    (folder / "transcripts.tsv").write_text(
        "filename\ttext\n"
        "a.wav\tGood morning, Dr Smith!\n"
        "sub/b.flac\tsecond one\tspk2\n"
        "c.ogg\t  ... \n"  # empty after normalisation
        "gone.wav\tnot here\n"
        "only-one-column\n"
    )
    out = tmp_path / "m.jsonl"
    with caplog.at_level(logging.WARNING):
        recs = import_audio_folder(folder, out)
    assert [(r["id"], r["text"], r["speaker"]) for r in recs] == [
        ("a", "good morning dr smith", "unknown"),
        ("sub-b", "second one", "spk2"),
    ]
    assert recs[1]["duration"] == pytest.approx(0.5)
    warned = _warnings(caplog)
    assert "gone.wav (listed in" in warned
    assert "untranscribed.wav: no transcript" in warned
    assert "transcripts.tsv:6: bad record: expected filename<TAB>text" in warned
    assert "empty transcript for c.ogg" in warned
    assert [r["id"] for r in read_manifest(out, "speech")] == ["a", "sub-b"]


def test_audio_folder_header_variants(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    _audio(folder / "x.wav", 0.3)
    (folder / "transcripts.tsv").write_text("path\ttext\nx.wav\tfine\n")
    assert [r["text"] for r in import_audio_folder(folder, tmp_path / "m.jsonl")] == ["fine"]
    (folder / "transcripts.tsv").write_text("x.wav\tno header\n")
    assert [r["text"] for r in import_audio_folder(folder, tmp_path / "m.jsonl")] == ["no header"]


def test_audio_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusImportError, match="not found"):
        import_audio_folder(tmp_path / "nope", tmp_path / "m.jsonl")
    (tmp_path / "d").mkdir()
    with pytest.raises(CorpusImportError, match="transcripts.tsv not found"):
        import_audio_folder(tmp_path / "d", tmp_path / "m.jsonl")
