"""Log-mel features: agreement with librosa, speed perturbation, the store stage."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from data_prep.features import (
    FeatureConfig,
    LogMelExtractor,
    compute_cmvn,
    extract_features,
    features_hash,
    speed_perturb,
)
from data_prep.manifest import write_manifest
from data_prep.store import FeatureStore

SR = 16000


def chirp_noise(seconds: float = 1.3, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    sweep = np.sin(2 * np.pi * (100 * t + (7000 - 100) / (2 * seconds) * t**2))
    return (0.5 * sweep + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def test_log_mel_matches_librosa() -> None:
    cfg = FeatureConfig()
    y = chirp_noise()
    ours = LogMelExtractor(cfg)(torch.from_numpy(y)).numpy()
    ref_power = librosa.feature.melspectrogram(
        y=y.astype(np.float64), sr=SR, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
        win_length=cfg.win_length, n_mels=cfg.n_mels, fmin=cfg.f_min, fmax=cfg.f_max,
        power=2.0, center=True, pad_mode="reflect",  # torchaudio's padding
    )  # (n_mels, T), slaney scale and norm by default
    ref = np.log(ref_power + cfg.log_floor).T  # (n_mels, T) -> (T, n_mels)
    assert ours.shape == ref.shape == (1 + y.size // cfg.hop_length, 80)
    # Tolerance: float32 vs float64 arithmetic; measured max diff is ~5e-5.
    assert np.abs(ours - ref).max() < 1e-3
    # and relative to the largest mel power
    assert np.abs(np.exp(ours) - ref_power.T).max() < 1e-4 * ref_power.max()


def test_batch_equals_single_and_frame_count() -> None:
    ext = LogMelExtractor(FeatureConfig())
    a, b = chirp_noise(1.0, 1), chirp_noise(1.0, 2)
    batch = ext(torch.from_numpy(np.stack([a, b])))
    assert batch.shape == (2, 101, 80)
    torch.testing.assert_close(batch[1], ext(torch.from_numpy(b)), rtol=1e-5, atol=1e-4)
    assert ext(torch.zeros(16001)).shape == (101, 80)
    with pytest.raises(ValueError, match="waveform"):
        ext(torch.zeros(1, 2, 400))


@pytest.mark.parametrize("speed", [0.9, 1.1])
def test_speed_perturbation_length_and_pitch(speed: float) -> None:
    n = SR  # 1 s of a 1 kHz tone
    wave = torch.sin(2 * torch.pi * 1000 * torch.arange(n) / SR)
    out = speed_perturb(wave, SR, speed)
    assert abs(out.numel() - n / speed) <= 1
    # Faster playback raises the pitch by the same factor.
    spectrum = np.abs(np.fft.rfft(out.numpy()))
    peak_hz = np.argmax(spectrum) * SR / out.numel()
    assert abs(peak_hz - 1000 * speed) < 5
    assert speed_perturb(wave, SR, 1.0) is wave


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="f_max"):
        FeatureConfig(f_max=9000.0)
    with pytest.raises(ValueError, match="speed"):
        FeatureConfig(speed=0.0)


def make_corpus(root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    root.mkdir(parents=True, exist_ok=True)
    waves = {f"u{i}": chirp_noise(0.4 + 0.25 * i, seed=i) for i in range(3)}
    records = []
    for utt, wave in waves.items():
        path = root / f"{utt}.wav"
        sf.write(path, wave, SR, subtype="FLOAT")
        records.append({"id": utt, "audio_filepath": str(path), "duration": wave.size / SR,
                        "text": "hello", "speaker": "s1"})
    (root / "broken.wav").write_bytes(b"RIFF....not a wav file")
    (root / "tiny.wav").write_bytes(b"")
    sf.write(root / "tiny.wav", np.zeros(100, np.float32), SR)
    for name in ("broken", "tiny"):
        records.insert(1, {"id": name, "audio_filepath": str(root / f"{name}.wav"),
                           "duration": 0.1, "text": "x", "speaker": "s1"})
    manifest = write_manifest(root / "train.jsonl", records, "speech")
    return manifest, waves


def test_extract_features_store(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    manifest, waves = make_corpus(tmp_path / "corpus")
    cfg = FeatureConfig()
    with caplog.at_level(logging.WARNING):
        summary = extract_features(manifest, tmp_path / "feats", cfg, num_workers=1)
    assert (summary.num_stored, summary.num_failed) == (3, 2)
    assert "broken.wav" in caplog.text and "tiny.wav" in caplog.text
    store = FeatureStore(tmp_path / "feats")
    assert store.ids == ["u0", "u1", "u2"] and store.dim == 80
    assert store.config_hash == features_hash(manifest, cfg)
    ext = LogMelExtractor(cfg)
    for utt, wave in waves.items():
        feats = store.get(utt)
        assert feats.shape == (1 + wave.size // 160, 80) and feats.dtype == np.float16
        expected = ext(torch.from_numpy(wave)).numpy()
        # float16 keeps ~3 significant digits of values up to ~15 in magnitude
        np.testing.assert_allclose(feats.astype(np.float32), expected, atol=1e-2, rtol=1e-3)
    failed = {f["id"]: f for f in store.failed()}
    assert set(failed) == {"broken", "tiny"}
    assert failed["broken"]["path"].endswith("broken.wav")
    assert "too short" in failed["tiny"]["reason"]
    mean, std = compute_cmvn(store)
    allv = np.concatenate([store[i] for i in range(len(store))]).astype(np.float64)
    np.testing.assert_allclose(mean, allv.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std, allv.std(0), rtol=1e-5)

    assert extract_features(manifest, tmp_path / "feats", cfg, num_workers=1).skipped
    # editing the manifest changes the hash, so the store is rebuilt
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(line for line in lines if '"u1"' not in line) + "\n")
    summary = extract_features(manifest, tmp_path / "feats", cfg, num_workers=1)
    assert not summary.skipped and FeatureStore(tmp_path / "feats").ids == ["u0", "u2"]


def test_extract_speed_perturbed_with_workers(tmp_path: Path) -> None:
    manifest, waves = make_corpus(tmp_path / "corpus")
    cfg = FeatureConfig(speed=0.9)
    summary = extract_features(manifest, tmp_path / "sp", cfg, num_workers=2, chunk_size=2)
    assert summary.num_stored == 3 and summary.chunks_computed == 3
    store = FeatureStore(tmp_path / "sp")
    assert store.ids == ["u0-sp0.9", "u1-sp0.9", "u2-sp0.9"]
    for utt, wave in waves.items():
        n_sp = speed_perturb(torch.from_numpy(wave), SR, 0.9).numel()
        assert abs(n_sp - wave.size / 0.9) <= 1
        assert store.get(f"{utt}-sp0.9").shape[0] == 1 + n_sp // 160
    index = json.loads((FeatureStore(tmp_path / "sp").files_dir / "index.json").read_text())
    assert index["config_hash"] != features_hash(manifest, FeatureConfig())


def test_augmented_copy_store(tmp_path: Path) -> None:
    """An augmented copy: suffixed ids, same lengths, other values, deterministic, own hash."""
    from data_prep.augment_audio import AugmentConfig
    from data_prep.features import FeatureJob

    manifest, waves = make_corpus(tmp_path / "corpus")
    cfg = FeatureConfig()
    noisy = AugmentConfig(reverb_prob=0.0, babble_prob=0.0, noise_prob=1.0, gain_prob=0.0,
                          telephone_prob=0.0, codec_prob=0.0)  # fmt: skip
    extract_features(manifest, tmp_path / "clean", cfg, num_workers=1)
    extract_features(manifest, tmp_path / "aug1", cfg, num_workers=1, augment=noisy, copy=1)
    clean, aug = FeatureStore(tmp_path / "clean"), FeatureStore(tmp_path / "aug1")
    assert aug.ids == [f"{u}-aug1" for u in clean.ids]
    for utt in clean.ids:
        a, c = aug.get(f"{utt}-aug1").astype(np.float32), clean.get(utt).astype(np.float32)
        assert a.shape == c.shape and np.abs(a - c).mean() > 0.1
    job = FeatureJob(cfg, noisy, 1)
    path = next(iter(waves))
    rec = json.loads(manifest.read_text().splitlines()[0])["audio_filepath"]
    assert path == "u0"
    wav = str((manifest.parent / rec).resolve()) if not Path(rec).is_absolute() else rec
    np.testing.assert_array_equal(job(wav), job(wav))  # same seed, same copy
    assert not np.array_equal(job(wav), FeatureJob(cfg, noisy, 2)(wav))  # another copy differs
    assert aug.config_hash != clean.config_hash
    with pytest.raises(ValueError, match="copy >= 1"):
        extract_features(manifest, tmp_path / "bad", cfg, num_workers=1, augment=noisy, copy=0)


def test_the_one_mel_filterbank_equals_torchaudios() -> None:
    """Every front end (torch log-mel, numpy log-mel, Whisper's) uses features_numpy.mel_filterbank;
    it is torchaudio's Slaney filterbank and librosa's."""
    import torchaudio

    from data_prep.features_numpy import mel_filterbank

    for n_fft, f_min, f_max, n_mels, sr in ((512, 20.0, 7600.0, 80, 16000), (400, 0.0, 8000.0, 80, 16000)):
        ref = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, f_min, f_max, n_mels, sr, norm="slaney", mel_scale="slaney")
        np.testing.assert_allclose(mel_filterbank(n_fft // 2 + 1, f_min, f_max, n_mels, sr), ref.numpy(), atol=1e-6)
