"""Tests for data_prep.speech_corpus: the espeak-ng/flite corpus on its "tiny" size."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import soundfile as sf

from data_prep import speech_corpus as sc
from data_prep.manifest import read_manifest
from data_prep.speech_corpus import (
    SIZES,
    SPLITS,
    Speaker,
    SpeechCorpusConfig,
    SpeechCorpusError,
    available_speakers,
    generate_speech_corpus,
    split_speakers,
)
from data_prep.text_gen import normalize_text

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")

TINY = SIZES["tiny"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("corpus")
    return out, generate_speech_corpus(out, TINY, num_workers=2)


def _records(manifests: dict[str, Path]) -> dict[str, list[dict]]:
    return {split: read_manifest(path, "speech") for split, path in manifests.items()}


def test_layout_and_manifests(corpus: tuple[Path, dict[str, Path]]) -> None:
    out, manifests = corpus
    assert set(manifests) == set(SPLITS)
    recs = _records(manifests)
    for split in SPLITS:
        assert manifests[split] == out / f"{split}.jsonl"
        assert len(recs[split]) == TINY.count(split)
        for rec in recs[split]:
            path = Path(rec["audio_filepath"])
            assert path.parent == out / "wavs" / split and path.name == f"{rec['id']}.wav"
            info = sf.info(str(path))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert rec["duration"] == pytest.approx(info.frames / 16000, abs=1e-3)
            assert 0.5 < rec["duration"] < 15.0
            assert rec["text"] and rec["text"] == normalize_text(rec["text"])
            assert rec["speaker"].startswith(("espeak_", "flite_"))
    # relative paths in the file, so the corpus can be moved
    first = json.loads(manifests["train"].read_text().splitlines()[0])
    assert not os.path.isabs(first["audio_filepath"])


def test_speakers_and_sentences_disjoint(corpus: tuple[Path, dict[str, Path]]) -> None:
    recs = _records(corpus[1])
    spk = {s: {r["speaker"] for r in recs[s]} for s in SPLITS}
    txt = {s: {r["text"] for r in recs[s]} for s in SPLITS}
    assert not spk["train"] & spk["test"] and not spk["dev"] & spk["test"]
    assert not spk["train"] & spk["dev"]
    assert not txt["train"] & txt["test"] and not txt["train"] & txt["dev"]
    assert len(spk["train"]) > 10  # many voices, not one


def test_corpus_info(corpus: tuple[Path, dict[str, Path]]) -> None:
    info = json.loads((corpus[0] / "corpus_info.json").read_text())
    assert info["splits"]["train"]["utterances"] == TINY.train_utts
    assert 0 < info["splits"]["train"]["hours"] < 0.1
    assert "espeak" in info["engines"]


def test_deterministic_and_resumable(corpus: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    out, manifests = corpus
    # same seed, fresh directory, in-process: same plan, same audio
    other = generate_speech_corpus(tmp_path / "again", TINY, num_workers=0)
    for split in SPLITS:
        a = [(r["id"], r["text"], r["speaker"]) for r in read_manifest(manifests[split], "speech")]
        b = [(r["id"], r["text"], r["speaker"]) for r in read_manifest(other[split], "speech")]
        assert a == b
    wav = "wavs/dev/dev_000001.wav"
    assert (out / wav).read_bytes() == (tmp_path / "again" / wav).read_bytes()

    # rerun: valid wavs are kept, a broken one is re-synthesised
    again = tmp_path / "again"
    broken = again / "wavs/train/train_000003.wav"
    broken.write_bytes(b"RIFF")
    kept = again / "wavs/train/train_000004.wav"
    os.utime(kept, (1_000_000_000, 1_000_000_000))
    generate_speech_corpus(again, TINY, num_workers=0)
    assert kept.stat().st_mtime == 1_000_000_000
    assert sf.info(str(broken)).frames > 0


def test_changed_seed_resynthesises(tmp_path: Path) -> None:
    cfg = SpeechCorpusConfig(train_utts=3, dev_utts=1, test_utts=1, seed=1, use_flite=False)
    first = read_manifest(generate_speech_corpus(tmp_path, cfg, num_workers=0)["train"], "speech")
    wav = Path(first[0]["audio_filepath"])
    before = wav.read_bytes()
    second = generate_speech_corpus(tmp_path, replace(cfg, seed=2), num_workers=0)["train"]
    after = read_manifest(second, "speech")
    assert after[0]["text"] != first[0]["text"]
    assert wav.read_bytes() != before  # not trusted under a new plan


def test_sample_rate_and_no_flite(tmp_path: Path) -> None:
    cfg = SpeechCorpusConfig(train_utts=2, dev_utts=1, test_utts=1, sample_rate=8000,
                             use_flite=False)  # fmt: skip
    recs = read_manifest(generate_speech_corpus(tmp_path, cfg, num_workers=0)["train"], "speech")
    assert all(r["speaker"].startswith("espeak_") for r in recs)
    assert sf.info(recs[0]["audio_filepath"]).samplerate == 8000


def test_split_speakers() -> None:
    speakers = available_speakers(use_flite=False)
    assert len(speakers) >= 8
    assert not any("mb" in s.voice for s in speakers)
    split = split_speakers(speakers, seed=0)
    names = {s: {sp.name for sp in split[s]} for s in SPLITS}
    assert sum(len(v) for v in names.values()) == len(speakers)
    assert not names["train"] & names["dev"] and not names["train"] & names["test"]
    assert not names["dev"] & names["test"]
    assert names["test"] and names["dev"]
    assert split_speakers(speakers, seed=0) == split
    assert split_speakers(speakers, seed=1) != split
    # adding another engine's voices leaves the espeak-ng split alone
    extra = [Speaker(f"flite_{v}", "flite", v) for v in ("a", "b", "c", "d")]
    with_flite = split_speakers(speakers + extra, seed=0)
    for s in SPLITS:
        assert [sp for sp in with_flite[s] if sp.engine == "espeak"] == split[s]
    # a group too small to hold speakers out stays in train
    assert {sp.name for sp in with_flite["train"] if sp.engine == "flite"} == {e.name for e in extra}


def test_sizes() -> None:
    assert set(SIZES) >= {"tiny", "small", "default"}
    assert SIZES["tiny"].train_utts + SIZES["tiny"].dev_utts + SIZES["tiny"].test_utts <= 60
    # trimmed utterances average about 2.14 s (1.963 h for 3300 measured on 2026-11-30),
    # so 3370+ are needed for 2 hours of train audio
    assert SIZES["default"].train_utts * 2.14 >= 7200


def test_missing_espeak_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sc.shutil, "which", lambda name: None)
    with pytest.raises(SpeechCorpusError, match="apt-get install espeak-ng"):
        generate_speech_corpus(tmp_path, TINY, num_workers=0)


def test_trim_silence_keeps_a_margin_around_the_speech() -> None:
    import numpy as np

    sr = 16000
    speech = np.sin(np.linspace(0, 400 * np.pi, sr // 2)).astype(np.float32)  # 0.5 s tone
    wave = np.concatenate([np.zeros(sr // 4), speech, np.zeros(sr // 2)]).astype(np.float32)
    trimmed = sc.trim_silence(wave, sr, keep_s=0.1)
    assert abs(len(trimmed) - (len(speech) + 2 * sr // 10)) <= 2
    assert np.abs(trimmed[: sr // 20]).max() == 0 and np.abs(trimmed[-sr // 20 :]).max() == 0
    assert len(sc.trim_silence(np.zeros(100, np.float32), sr)) == 100  # all silent: untouched


def test_generated_utterances_end_without_long_silence(corpus: tuple[Path, dict[str, Path]]) -> None:
    import numpy as np

    _, manifests = corpus
    for rec in read_manifest(manifests["train"], "speech")[:5]:
        wave, sr = sf.read(rec["audio_filepath"], dtype="float32")
        loud = np.flatnonzero(np.abs(wave) > np.abs(wave).max() * 0.01)
        assert (len(wave) - loud[-1]) / sr <= sc.TRIM_KEEP_S + 0.01
