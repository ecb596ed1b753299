"""Whole-corpus import for `--data DIR`: layout detection, split merging, dev split."""

from pathlib import Path

import pytest
from test_speech_importers import _audio
from test_video_importers import _ucf_tree, _video

from data_prep.importers.corpus import detect_format, import_speech_corpus, import_video_corpus
from data_prep.manifest import read_manifest, write_manifest
from data_prep.validate import read_dropped_report


def test_speech_corpus_mixes_layouts_and_merges_split_entries(tmp_path: Path):
    root = tmp_path / "corpus"
    # train: two LibriSpeech-style entries that must be merged
    for name, spk in (("train-clean-100", "1"), ("train-other", "2")):
        ch = root / name / spk / "10"
        _audio(ch / f"{spk}-10-0000.flac", 0.5)
        (ch / f"{spk}-10.trans.txt").write_text(f"{spk}-10-0000 HELLO THERE\n")
    # dev: a folder with transcripts.tsv
    _audio(root / "dev" / "a.wav", 0.4)
    (root / "dev" / "transcripts.tsv").write_text("a.wav\tgood morning\n")
    # test: a NeMo-style manifest
    wav = _audio(tmp_path / "audio" / "t.wav", 0.3)
    write_manifest(root / "test.jsonl", [{"id": "t", "audio_filepath": str(wav), "duration": 0.3, "text": "bye", "speaker": "s"}], "speech")
    assert detect_format(root / "train-clean-100") == "librispeech"
    assert detect_format(root / "dev") == "folder" and detect_format(root / "test.jsonl") == "manifest"
    out = import_speech_corpus(root, tmp_path / "out")
    train = read_manifest(out["train"], "speech")
    assert sorted(r["text"] for r in train) == ["hello there", "hello there"]
    assert [r["text"] for r in read_manifest(out["dev"], "speech")] == ["good morning"]
    assert Path(read_manifest(out["test"], "speech")[0]["audio_filepath"]) == wav.resolve()


def test_speech_corpus_errors(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="not found"):
        import_speech_corpus(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "c" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="cannot tell the corpus layout"):
        import_speech_corpus(tmp_path / "c", tmp_path / "out")
    with pytest.raises(ValueError, match="unknown corpus format"):
        import_speech_corpus(tmp_path / "c", tmp_path / "out", fmt="mp3")


def test_video_csv_corpus_gets_a_stratified_dev_split(tmp_path: Path):
    root = tmp_path / "clips"
    rows = []
    for label in ("wave", "clap"):
        for i in range(5):
            _video(root / label / f"{label}{i}.mp4", n=4)
            rows.append(f"{label}/{label}{i}.mp4,{label}")
    (root / "train.csv").write_text("path,label\n" + "\n".join(rows[:8]))
    (root / "test.csv").write_text("\n".join(rows[8:]))
    out = import_video_corpus(root, tmp_path / "out", fmt="auto", dev_fraction=0.25)
    train, dev, test = (read_manifest(out[s], "video") for s in ("train", "dev", "test"))
    assert len(train) + len(dev) == 8 and len(test) == 2
    assert {r["label"] for r in dev} == {"wave", "clap"}
    assert not {r["id"] for r in train} & {r["id"] for r in dev}
    again = import_video_corpus(root, tmp_path / "out2", dev_fraction=0.25)
    assert [r["id"] for r in read_manifest(again["dev"], "video")] == [r["id"] for r in dev]


def test_video_ucf101_layout_with_sibling_split_lists(tmp_path: Path):
    root, splits = _ucf_tree(tmp_path)  # tmp_path/UCF-101 and tmp_path/ucfTrainTestlist
    out = import_video_corpus(tmp_path, tmp_path / "out", fmt="auto")
    assert set(out) == {"train", "dev", "test"}
    test = read_manifest(out["test"], "video")
    assert len(test) == 2
    # the corrupt and the missing training video are reported; dev and test lost nothing
    train_report = read_dropped_report(tmp_path / "out" / "train.dropped.tsv")
    assert [reason.split(":")[0] for _, reason in train_report] == ["unreadable video", "missing file"]
    assert read_dropped_report(tmp_path / "out" / "dev.dropped.tsv") == []
    assert read_dropped_report(tmp_path / "out" / "test.dropped.tsv") == []
