"""Offline waveform augmentation (data_prep.augment_audio)."""

from __future__ import annotations

import random
import shutil

import numpy as np
import pytest

pytest.importorskip("audiomentations")
pytest.importorskip("pyroomacoustics")

from data_prep.augment_audio import (  # noqa: E402
    CODECS,
    EFFECTS,
    AugmentConfig,
    augment,
    codec_round_trip,
)

SR = 16000
HAS_FFMPEG = shutil.which("ffmpeg") is not None
needs_ffmpeg = pytest.mark.skipif(not HAS_FFMPEG, reason="ffmpeg not installed (apt-get install ffmpeg)")

#: Every effect off; tests switch on what they need.
OFF = {f"{name}_prob": 0.0 for name in EFFECTS}
#: Small, short-RT60 rooms and a 2-RIR bank keep the room simulation cheap.
SMALL_ROOMS = {"rt60_s": (0.2, 0.3), "room_size_m": (3.0, 4.0), "room_height_m": (2.5, 2.8),
               "rir_bank_size": 2}


def only(effect: str, **kw) -> AugmentConfig:
    return AugmentConfig(**{**OFF, **SMALL_ROOMS, f"{effect}_prob": 1.0, **kw})


def _speech_like(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """Voiced harmonics up to ~7 kHz with a gliding pitch and syllable envelope, plus a little
    broadband noise: enough like speech for levels, spectra and codec alignment."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.5 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 50))
    x = x * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2 + 0.05 * rng.standard_normal(t.size)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return _speech_like()


@pytest.fixture(scope="module")
def pool() -> list[np.ndarray]:
    return [_speech_like(seconds, seed) for seconds, seed in ((2.0, 1), (4.0, 2), (1.0, 3))]


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    noise = noisy.astype(np.float64) - clean
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2))


def test_deterministic_contract_and_no_global_rng_leak(speech, pool):
    everything_on = {f"{name}_prob": 1.0 for name in EFFECTS}
    cfg = AugmentConfig(**{**everything_on, **SMALL_ROOMS, "codecs": ("mp3", "mulaw"),
                           "codec_prob": 1.0 if HAS_FFMPEG else 0.0})
    random.seed(123)
    np.random.seed(123)
    py_state, np_state = random.getstate(), np.random.get_state()
    a, names_a = augment(speech, SR, seed="utt1-aug0", cfg=cfg, babble=pool)
    assert random.getstate() == py_state  # the global RNGs are left as they were
    after = np.random.get_state()
    assert np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    b, names_b = augment(speech, SR, seed="utt1-aug0", cfg=cfg, babble=pool)
    c, _ = augment(speech, SR, seed="utt1-aug1", cfg=cfg, babble=pool)
    assert np.array_equal(a, b) and names_a == names_b
    assert not np.allclose(a, c)
    assert names_a == [n for n in EFFECTS if cfg.codec_prob > 0 or n != "codec"]
    for out in (a, c):
        assert out.dtype == np.float32 and out.shape == speech.shape
        assert np.isfinite(out).all() and np.abs(out).max() <= 1.0
    # the input is untouched, and float64 / int seeds are fine
    d, _ = augment(speech.astype(np.float64), SR, seed=7, cfg=only("noise"))
    assert d.dtype == np.float32 and np.array_equal(d, augment(speech, SR, seed="7", cfg=only("noise"))[0])


def test_all_effects_off_is_identity(speech, pool):
    out, names = augment(speech, SR, seed="x", cfg=AugmentConfig(**OFF), babble=pool)
    assert names == [] and np.array_equal(out, speech) and out is not speech


@pytest.mark.parametrize("effect", [e for e in EFFECTS if e != "codec" or HAS_FFMPEG])
def test_each_effect_on_changes_and_off_does_nothing(effect, speech, pool):
    out, names = augment(speech, SR, seed="s", cfg=only(effect), babble=pool)
    assert names == [effect]
    assert np.abs(out - speech).max() > 1e-3
    assert out.shape == speech.shape and np.isfinite(out).all() and np.abs(out).max() <= 1.0
    off, names_off = augment(speech, SR, seed="s", cfg=only(effect, **{f"{effect}_prob": 0.0}),
                             babble=pool)
    assert names_off == [] and np.array_equal(off, speech)


def test_switching_one_effect_off_keeps_the_others_draws(speech, pool):
    halves = {**{f"{n}_prob": 0.5 for n in EFFECTS}, **SMALL_ROOMS, "codec_prob": 0.0}
    half = AugmentConfig(**halves)
    no_noise = AugmentConfig(**{**halves, "noise_prob": 0.0})
    seen = set()
    for k in range(12):
        _, a = augment(speech[:4000], SR, seed=k, cfg=half, babble=pool)
        _, b = augment(speech[:4000], SR, seed=k, cfg=no_noise, babble=pool)
        assert b == [n for n in a if n != "noise"]
        seen.update(a)
    assert {"noise", "gain", "telephone"} <= seen  # p=0.5 really draws


@pytest.mark.parametrize("color", ["white", "pink", "brown", "blue"])
def test_noise_hits_requested_snr(color, speech):
    for snr in (0.0, 10.0, 25.0):
        cfg = only("noise", noise_snr_db=(snr, snr), noise_colors=(color,))
        out, _ = augment(speech, SR, seed=f"n{snr}", cfg=cfg)
        assert abs(_snr_db(speech, out) - snr) < 1.0


def test_babble_snr_and_file_pool(speech, pool, tmp_path):
    import soundfile as sf

    out, names = augment(speech, SR, seed="b", cfg=only("babble", babble_snr_db=(10.0, 10.0)),
                         babble=pool)
    assert names == ["babble"] and abs(_snr_db(speech, out) - 10.0) < 1.0
    paths = []
    for i, w in enumerate(pool):
        paths.append(tmp_path / f"talker{i}.wav")
        sf.write(paths[-1], w, SR, subtype="FLOAT")
    from_files, _ = augment(speech, SR, seed="b", cfg=only("babble", babble_snr_db=(10.0, 10.0)),
                            babble=paths)
    np.testing.assert_allclose(from_files, out, atol=1e-5)
    # no pool: babble cannot apply
    same, names = augment(speech, SR, seed="b", cfg=only("babble"))
    assert names == [] and np.array_equal(same, speech)


def test_telephone_removes_energy_above_4khz(speech):
    def high_band_fraction(x: np.ndarray) -> float:
        power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
        freqs = np.fft.rfftfreq(x.size, 1 / SR)
        return power[freqs > 4000].sum() / power.sum()

    assert high_band_fraction(speech) > 1e-2
    out, _ = augment(speech, SR, seed="t", cfg=only("telephone"))
    assert high_band_fraction(out) < 1e-5


def test_reverb_keeps_level_and_starts_at_the_direct_path(speech):
    from data_prep.augment_audio import _rir, _rir_cfg_key

    cfg = only("reverb")
    out, _ = augment(speech, SR, seed="r", cfg=cfg)
    rms = lambda x: float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))  # noqa: E731
    assert abs(rms(out) / rms(speech) - 1) < 0.05
    for index in range(cfg.rir_bank_size):
        h = _rir(_rir_cfg_key(cfg), index, SR)
        # the direct path leads (no shift of the copy), a reverberant tail follows
        assert np.argmax(np.abs(h)) == 0 and h.size > 0.1 * SR
        assert np.sum(h[int(0.05 * SR):] ** 2) > 0.01
    _rir.cache_clear()  # simulated again from the bank seed: the same RIRs
    assert np.array_equal(augment(speech, SR, seed="r", cfg=cfg)[0], out)


@needs_ffmpeg
@pytest.mark.parametrize("codec", sorted(CODECS))
def test_codec_round_trip_is_aligned(codec, speech):
    bitrate = CODECS[codec].bitrates[-1]
    out = codec_round_trip(speech, SR, codec, bitrate)
    assert out.dtype == np.float32 and out.shape == speech.shape and np.isfinite(out).all()
    corr = [np.corrcoef(speech[2000:-2000], np.roll(out, lag)[2000:-2000])[0, 1] for lag in (-1, 0, 1)]
    assert corr[1] > 0.8 and corr[1] >= max(corr) - 1e-6, corr


def test_codec_without_ffmpeg_raises_a_clear_error(speech, monkeypatch):
    import data_prep.augment_audio as aa

    monkeypatch.setattr(aa.shutil, "which", lambda name: None)
    with pytest.raises(aa.AugmentError, match="apt-get install ffmpeg"):
        augment(speech, SR, seed="c", cfg=only("codec"))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"noise_prob": 1.5}, "noise_prob"),
        ({"reverb_prob": -0.1}, "reverb_prob"),
        ({"noise_snr_db": (30.0, 5.0)}, "noise_snr_db"),
        ({"babble_snr_db": (5.0, float("nan"))}, "babble_snr_db"),
        ({"gain_db": (-6.0,)}, "gain_db"),
        ({"rt60_s": (0.0, 0.5)}, "rt60_s"),
        ({"babble_talkers": (0, 3)}, "babble_talkers"),
        ({"babble_talkers": (1.5, 3)}, "babble_talkers"),
        ({"telephone_high_hz": (3000.0, 4500.0)}, "telephone_high_hz"),
        ({"noise_colors": ("pink", "plaid")}, "noise_colors"),
        ({"codecs": ("mp3", "wma")}, "codecs"),
        ({"codecs": (), "codec_prob": 0.5}, "codecs"),
        ({"rir_bank_size": 0}, "rir_bank_size"),
    ],
)
def test_invalid_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"AugmentConfig.{field}"):
        AugmentConfig(**kwargs)


def test_config_accepts_lists_and_rejects_bad_waves():
    cfg = AugmentConfig(noise_snr_db=[5, 10], codecs=["opus"])
    assert cfg.noise_snr_db == (5, 10) and cfg.codecs == ("opus",)
    hash(cfg)
    with pytest.raises(ValueError, match="1-D"):
        augment(np.zeros((2, 10), np.float32), SR, seed=0, cfg=cfg)
    with pytest.raises(ValueError, match="sample_rate"):
        augment(np.zeros(10, np.float32), 0, seed=0, cfg=cfg)
    out, names = augment(np.zeros(0, np.float32), SR, seed=0, cfg=cfg)
    assert out.size == 0 and names == []
