"""Real speech-corpus layouts: NeMo manifests and Common Voice importers, and the recipe run end to
end on each supported layout (LibriSpeech, Kaldi, NeMo, folder + tsv, Common Voice)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf
from test_speech_importers import _audio

from data_prep.importers.corpus import import_speech_corpus
from data_prep.importers.speech import CorpusImportError, import_common_voice, import_nemo_manifest
from data_prep.manifest import read_manifest
from data_prep.validate import DropList, read_dropped_report
from pipeline.cli import main as cli_main
from recipes.speech_ctc.run import main as recipe_main
from recipes.speech_ctc.stages import DEFAULT_CONFIG

TINY = DEFAULT_CONFIG.parent / "tiny.yaml"

# ----------------------------------------------------------------------------- NeMo


def test_nemo_manifest_as_nemo_writes_it(tmp_path: Path, monkeypatch):
    root = tmp_path / "corpus"
    _audio(root / "audio" / "a.wav", 0.5)
    _audio(root / "audio" / "b.flac", 0.4)
    absolute = _audio(tmp_path / "elsewhere" / "c.wav", 0.3)
    _audio(root / "audio" / "long.wav", 2.0)
    lines = [
        {"audio_filepath": "audio/a.wav", "duration": 0.5, "text": "Hello World, it's me!"},
        {"audio_filepath": "audio/b.flac", "duration": 0.4, "text": "second", "lang": "en", "speaker": 7},
        {"audio_filepath": str(absolute), "duration": 0.3, "text": "third", "id": "my-id"},
        {"audio_filepath": "audio/long.wav", "offset": 0.5, "duration": 1.0, "text": "a segment"},
        {"audio_filepath": "audio/a.wav", "duration": 0.5},  # no text
        {"duration": 0.5, "text": "no audio path"},
        {"audio_filepath": "audio/gone.wav", "duration": 0.5, "text": "missing file"},
        {"audio_filepath": "audio/a.wav", "duration": 0.5, "text": "?!"},  # empty once normalised
    ]
    manifest = root / "train.jsonl"
    manifest.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    monkeypatch.chdir(tmp_path)  # relative paths resolve against the manifest, not the cwd
    drops = DropList()
    recs = import_nemo_manifest(manifest, tmp_path / "out" / "train.jsonl", drops=drops)
    by_id = {r["id"]: r for r in recs}
    assert list(by_id) == ["a", "b", "my-id", "long-0000050"]
    assert by_id["a"]["text"] == "hello world it's me" and by_id["a"]["speaker"] == "unknown"
    assert by_id["b"]["speaker"] == "7" and by_id["b"]["lang"] == "en"  # extra fields kept
    assert Path(by_id["my-id"]["audio_filepath"]) == absolute.resolve()
    seg = by_id["long-0000050"]
    assert seg["duration"] == pytest.approx(1.0) and "offset" not in seg
    assert sf.info(seg["audio_filepath"]).duration == pytest.approx(1.0)
    reasons = [reason for _, reason in drops]
    assert [r.split(":")[0] for r in reasons] == ["bad record", "bad record", "missing file", "empty text", "bad record"]
    assert "missing field(s) text" in reasons[0] and "missing field(s) audio_filepath" in reasons[1]
    assert "gone.wav" in reasons[2] and "not a JSON object" in reasons[4]
    assert [r["id"] for r in read_manifest(tmp_path / "out" / "train.jsonl", "speech")] == list(by_id)


def test_nemo_manifest_errors(tmp_path: Path):
    with pytest.raises(CorpusImportError, match="manifest not found"):
        import_nemo_manifest(tmp_path / "none.jsonl", tmp_path / "out.jsonl")
    _audio(tmp_path / "x.wav", 0.3)
    (tmp_path / "m.jsonl").write_text(
        json.dumps({"audio_filepath": "x.wav", "text": "one", "offset": 0.1}) + "\n"  # no duration
        + json.dumps({"audio_filepath": "x.wav", "text": "two"}) + "\n"
        + json.dumps({"audio_filepath": "x.wav", "text": "three"}) + "\n"  # same file: id made unique
    )
    drops = DropList()
    recs = import_nemo_manifest(tmp_path / "m.jsonl", tmp_path / "out.jsonl", drops=drops)
    assert [r["id"] for r in recs] == ["x", "x-2"]
    assert len(drops) == 1 and "positive duration" in drops[0][1]


# ----------------------------------------------------------------------------- Common Voice


def _mp3(path: Path, seconds: float) -> Path:
    return _audio(path, seconds, fmt="MP3")


def test_common_voice_split(tmp_path: Path):
    root = tmp_path / "cv-corpus-1" / "en"
    _mp3(root / "clips" / "common_voice_en_1.mp3", 0.6)
    _mp3(root / "clips" / "common_voice_en_2.mp3", 0.5)
    header = "client_id\tpath\tsentence_id\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale\n"
    (root / "train.tsv").write_text(
        header
        + 'abc\tcommon_voice_en_1.mp3\ts1\tHe said "Go!"\t2\t0\ttwenties\tmale\t\ten\n'
        + "def\tcommon_voice_en_2.mp3\ts2\tSecond one.\t2\t0\t\t\t\ten\n"
        + "ghi\tcommon_voice_en_3.mp3\ts3\tNo clip here.\t2\t0\t\t\t\ten\n"
    )
    drops = DropList()
    recs = import_common_voice(root, root / "train.tsv", tmp_path / "train.jsonl", drops)
    assert [(r["id"], r["text"], r["speaker"]) for r in recs] == [
        ("common_voice_en_1", "he said go", "abc"), ("common_voice_en_2", "second one", "def"),
    ]
    assert recs[0]["gender"] == "male" and recs[0]["locale"] == "en" and "accents" not in recs[0]
    assert recs[0]["duration"] == pytest.approx(0.6, abs=0.08)
    assert drops == [("common_voice_en_3", drops[0][1])]
    assert drops[0][1].startswith("missing file:") and "common_voice_en_3.mp3" in drops[0][1]
    (root / "bad.tsv").write_text("client_id\tfile\ttext\n")
    with pytest.raises(CorpusImportError, match=r"bad.tsv:1: expected a header"):
        import_common_voice(root, root / "bad.tsv", tmp_path / "x.jsonl")


# ----------------------------------------------------------------------------- end to end

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def _records(tiny_speech_corpus) -> dict[str, list[dict]]:
    return {s: read_manifest(p, "speech") for s, p in tiny_speech_corpus.items()}


def _librispeech(root: Path, records: dict[str, list[dict]]) -> None:
    for split, recs in records.items():
        lines: dict[Path, list[str]] = {}
        for n, r in enumerate(recs):
            ch = root / f"{split}-clean" / str(100 + n % 3) / "7"
            utt = f"{100 + n % 3}-7-{n:04d}"
            wave, sr = sf.read(r["audio_filepath"])
            _write(ch / f"{utt}.flac", wave, sr)
            lines.setdefault(ch / f"{100 + n % 3}-7.trans.txt", []).append(f"{utt} {r['text'].upper()}")
        for trans, text in lines.items():
            trans.write_text("\n".join(text) + "\n")
    # bad: a transcript line whose flac is missing
    trans = next((root / "train-clean").rglob("*.trans.txt"))
    trans.write_text(trans.read_text() + f"{trans.stem.split('.')[0]}-9999 NO AUDIO HERE\n")


def _kaldi(root: Path, records: dict[str, list[dict]]) -> None:
    for split, recs in records.items():
        d = root / split
        d.mkdir(parents=True)
        scp = [f"{r['id']} {r['audio_filepath']}" for r in recs]
        if split == "train":
            scp.append("ghost /no/such/ghost.wav")
        (d / "wav.scp").write_text("\n".join(scp) + "\n")
        (d / "text").write_text("".join(f"{r['id']} {r['text']}\n" for r in recs) + ("ghost hello\n" if split == "train" else ""))
        (d / "utt2spk").write_text("".join(f"{r['id']} {r['speaker']}\n" for r in recs))


def _nemo(root: Path, records: dict[str, list[dict]]) -> None:
    root.mkdir(parents=True)
    for split, recs in records.items():
        lines = []
        for r in recs:
            rel = Path("audio") / split / Path(r["audio_filepath"]).name
            _copy(r["audio_filepath"], root / rel)
            # only the three fields NeMo writes, text not yet normalised
            lines.append({"audio_filepath": str(rel), "duration": r["duration"], "text": r["text"].capitalize() + "."})
        if split == "train":
            lines.append({"audio_filepath": str(rel), "duration": 1.0})  # no text
        (root / f"{split}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def _folder(root: Path, records: dict[str, list[dict]]) -> None:
    for split, recs in records.items():
        rows = ["path\ttext\tspeaker"]
        for r in recs:
            name = Path(r["audio_filepath"]).name
            _copy(r["audio_filepath"], root / split / name)
            rows.append(f"{name}\t{r['text']}\t{r['speaker']}")
        if split == "train":
            rows.append("missing.wav\tthis file is gone")
        (root / split / "transcripts.tsv").write_text("\n".join(rows) + "\n")


def _common_voice(root: Path, records: dict[str, list[dict]]) -> None:
    for split, recs in records.items():
        rows = ["client_id\tpath\tsentence\tup_votes\tdown_votes\tlocale"]
        for r in recs:
            name = f"common_voice_en_{r['id']}.mp3"
            wave, sr = sf.read(r["audio_filepath"])
            _write(root / "clips" / name, wave, sr, fmt="MP3")
            rows.append(f"{r['speaker']}\t{name}\t{r['text'].capitalize()}.\t2\t0\ten")
        if split == "train":
            rows.append("someone\tcommon_voice_en_gone.mp3\tNo clip.\t2\t0\ten")
        (root / f"{split}.tsv").write_text("\n".join(rows) + "\n")


def _copy(src: str, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _write(path: Path, wave, sr: int, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, sr, format=fmt)


LAYOUTS = {
    "librispeech": (_librispeech, "missing file"),
    "kaldi": (_kaldi, "missing file"),
    "nemo": (_nemo, "bad record"),
    "folder": (_folder, "missing file"),
    "commonvoice": (_common_voice, "missing file"),
}


@needs_espeak
@pytest.mark.slow
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_recipe_end_to_end_on_imported_corpus(layout, tiny_speech_corpus, tmp_path: Path, capsys):
    build, bad_reason = LAYOUTS[layout]
    records = _records(tiny_speech_corpus)
    root = tmp_path / layout
    build(root, records)
    exp = tmp_path / "exp"
    results = recipe_main([
        "--config", str(TINY), "--exp-dir", str(exp), f"data.corpus={root}", "data.format=auto",
        "train.max_epochs=1", "lm.lm_weights=[1.0]", "lm.word_scores=[0.0]",
    ])
    for split, recs in records.items():
        kept = read_manifest(exp / "manifests" / f"{split}.jsonl", "speech")
        assert len(kept) == len(recs), split
        assert all(r["text"] == r["text"].lower() and not r["text"].endswith(".") for r in kept)
    dropped = read_dropped_report(exp / "manifests" / "train.dropped.tsv")
    assert len(dropped) == 1 and dropped[0][1].startswith(bad_reason)
    assert results["manifests"]["train"]["kept"] == len(records["train"])
    assert results["train"]["steps"] > 0 and results["train"]["train_utterances"] == len(records["train"])
    assert results["metrics"]["test"]["utterances"] == len(records["test"])
    assert (exp / "bundle" / "model.safetensors").is_file()
    one = read_manifest(exp / "manifests" / "test.jsonl", "speech")[0]["audio_filepath"]
    capsys.readouterr()
    assert cli_main(["transcribe", "--model", str(exp / "bundle"), "--format", "json", one]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert Path(row["path"]).name == Path(one).name and isinstance(row["text"], str)


@needs_espeak
def test_a_split_with_nothing_usable_stops_in_one_line(tiny_speech_corpus, tmp_path: Path):
    records = _records(tiny_speech_corpus)
    root = tmp_path / "nemo"
    _nemo(root, records)
    (root / "dev.jsonl").write_text(json.dumps({"audio_filepath": "audio/none.wav", "text": "gone"}) + "\n")
    exp = tmp_path / "exp"
    with pytest.raises(SystemExit) as info:
        recipe_main(["--config", str(TINY), "--exp-dir", str(exp), f"data.corpus={root}", "--stop-stage", "1"])
    assert info.value.code == 1
    errors = [line for line in (exp / "log" / "run.log").read_text().splitlines() if "error:" in line]
    assert len(errors) == 1 and "dev: nothing left to use: 1 item(s) dropped" in errors[0]
    assert str(exp / "manifests" / "dev.dropped.tsv") in errors[0]
    assert read_dropped_report(exp / "manifests" / "dev.dropped.tsv")[0][1].startswith("missing file")
    # the other splits' manifests were written before the stop
    assert len(read_manifest(exp / "manifests" / "train.jsonl", "speech")) == len(records["train"])


def test_common_voice_is_detected_as_a_whole(tmp_path: Path):
    root = tmp_path / "en"
    for split in ("train", "dev", "test"):
        _mp3(root / "clips" / f"{split}.mp3", 0.4)
        (root / f"{split}.tsv").write_text(f"client_id\tpath\tsentence\nc\t{split}.mp3\tWord {split}\n")
    (root / "validated.tsv").write_text("client_id\tpath\tsentence\n")  # other release files are ignored
    out = import_speech_corpus(root, tmp_path / "out")
    assert {s: [r["text"] for r in read_manifest(p, "speech")] for s, p in out.items()} == {
        "train": ["word train"], "dev": ["word dev"], "test": ["word test"],
    }
    assert read_dropped_report(tmp_path / "out" / "train.dropped.tsv") == []
