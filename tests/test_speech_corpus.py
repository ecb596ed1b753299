"""Tests for data_prep.corpora.speech_corpus: the many-engine corpus on its "tiny" size."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import soundfile as sf

from data_prep.corpora import speech_corpus as sc
from data_prep.corpora.speech_corpus import (
    SIZES,
    SPLITS,
    SpeechCorpusConfig,
    SpeechCorpusError,
    generate_speech_corpus,
    split_speakers,
)
from data_prep.corpora.tts_engines import ENGINES, SpeakerSpec
from data_prep.manifest import read_manifest
from data_prep.text_norm import normalize_text

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")

TINY = SIZES["tiny"]
#: A corpus of the two fast command-line engines and template text, for the tests that
#: synthesise several corpora.
FAST = SpeechCorpusConfig(train_utts=3, dev_utts=1, test_utts=2, engines=("espeak", "flite"),
                          held_out_engines=("flite",), train_shares=(("espeak", 1.0),),
                          text="generated")  # fmt: skip


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
            assert rec["speaker"].startswith(rec["engine"] + "_") and rec["engine"] in ENGINES
            assert rec["text_source"]
    # relative paths in the file, so the corpus can be moved
    first = json.loads(manifests["train"].read_text().splitlines()[0])
    assert not os.path.isabs(first["audio_filepath"])


def test_speakers_sentences_and_held_out_engines_disjoint(corpus: tuple[Path, dict[str, Path]]) -> None:
    recs = _records(corpus[1])
    spk = {s: {r["speaker"] for r in recs[s]} for s in SPLITS}
    txt = {s: {r["text"] for r in recs[s]} for s in SPLITS}
    eng = {s: {r["engine"] for r in recs[s]} for s in SPLITS}
    assert not spk["train"] & spk["test"] and not spk["dev"] & spk["test"]
    assert not spk["train"] & spk["dev"]
    assert not txt["train"] & txt["test"] and not txt["train"] & txt["dev"]
    assert len(spk["train"]) > 10  # many voices, not one
    info = json.loads((corpus[0] / "corpus_info.json").read_text())
    held = set(info["held_out_engines"])
    assert held <= set(TINY.held_out_engines)
    assert not held & (eng["train"] | eng["dev"])  # never heard before test
    assert held <= eng["test"]
    assert len(eng["train"]) >= 2  # more than one synthesizer to learn from


def test_corpus_info(corpus: tuple[Path, dict[str, Path]]) -> None:
    info = json.loads((corpus[0] / "corpus_info.json").read_text())
    train = info["splits"]["train"]
    assert train["utterances"] == TINY.train_utts
    assert 0 < train["hours"] < 0.1
    assert "espeak" in info["engines"]
    assert sum(train["engine_hours"].values()) == pytest.approx(train["hours"], abs=1e-3)
    assert set(info["licenses"]) == set(info["engines"])


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
    cfg = replace(FAST, seed=1)
    first = read_manifest(generate_speech_corpus(tmp_path, cfg, num_workers=0)["train"], "speech")
    wav = Path(first[0]["audio_filepath"])
    before = wav.read_bytes()
    second = generate_speech_corpus(tmp_path, replace(cfg, seed=2), num_workers=0)["train"]
    after = read_manifest(second, "speech")
    assert after[0]["text"] != first[0]["text"]
    assert wav.read_bytes() != before  # not trusted under a new plan


def test_sample_rate_and_engine_choice(tmp_path: Path) -> None:
    cfg = replace(FAST, sample_rate=8000, engines=("espeak",), held_out_engines=())
    recs = read_manifest(generate_speech_corpus(tmp_path, cfg, num_workers=0)["train"], "speech")
    assert all(r["speaker"].startswith("espeak_") and r["engine"] == "espeak" for r in recs)
    assert sf.info(recs[0]["audio_filepath"]).samplerate == 8000


def test_short_of_the_hour_target_writes_no_manifest(tmp_path: Path) -> None:
    cfg = replace(FAST, min_train_hours=1.0)
    with pytest.raises(SpeechCorpusError, match="short of the 1 h"):
        generate_speech_corpus(tmp_path, cfg, num_workers=0)
    assert not list(tmp_path.glob("*.jsonl"))


def test_a_failing_utterance_is_dropped_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from data_prep.corpora.tts_engines import SynthesisError

    real = ENGINES["espeak"].synthesize
    calls = []

    def flaky(text, speaker, **kw):
        calls.append(text)
        if len(calls) == 2:
            raise SynthesisError(f"espeak/{speaker.name}: simulated failure")
        return real(text, speaker, **kw)

    monkeypatch.setattr(ENGINES["espeak"], "synthesize", flaky)
    cfg = replace(FAST, train_utts=30, dev_utts=1, test_utts=1, held_out_engines=())
    manifests = generate_speech_corpus(tmp_path, cfg, num_workers=0)
    kept = sum(len(read_manifest(m, "speech")) for m in manifests.values())
    assert kept == 31 and "simulated failure" in caplog.text and "dropped" in caplog.text


def test_split_speakers() -> None:
    speakers = ENGINES["espeak"].speakers()
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
    extra = [SpeakerSpec("flite", f"flite_{v}", v) for v in ("a", "b", "c", "d")]
    held = [SpeakerSpec("piper", "piper_joe", "joe")]
    with_more = split_speakers(speakers + extra + held, seed=0, held_out=("piper",))
    for s in SPLITS:
        assert [sp for sp in with_more[s] if sp.family == "espeak"] == split[s]
    # a group too small to hold speakers out stays in train; a held-out engine is test only
    assert {sp.name for sp in with_more["train"] if sp.family == "flite"} == {e.name for e in extra}
    assert [sp for sp in with_more["test"] if sp.family == "piper"] == held


def test_sizes() -> None:
    assert set(SIZES) >= {"tiny", "small", "default", "large"}
    assert SIZES["tiny"].train_utts + SIZES["tiny"].dev_utts + SIZES["tiny"].test_utts <= 60
    assert SIZES["large"].min_train_hours >= 10
    for cfg in SIZES.values():  # espeak-ng stays a minority of the new corpora
        shares = dict(cfg.train_shares)
        if cfg.text == "open":
            assert shares["espeak"] / sum(shares.values()) <= 0.3


def test_no_engine_installed_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sc, "available_engines", lambda families: [])
    with pytest.raises(SpeechCorpusError, match="apt-get install espeak-ng"):
        generate_speech_corpus(tmp_path, TINY, num_workers=0)


def test_unknown_engine_in_the_config_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown engine families"):
        SpeechCorpusConfig(train_utts=1, dev_utts=1, test_utts=1, engines=("espeak", "sam"))


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
