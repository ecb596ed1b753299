"""Tests for data_prep.audio: formats, rates, channels, and every kind of bad file."""

from __future__ import annotations

import logging
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from data_prep import audio as audio_mod
from data_prep.audio import AudioError, AudioInfo, audio_info, load_audio

HAS_FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None
needs_ffmpeg = pytest.mark.skipif(not HAS_FFMPEG, reason="ffmpeg not installed")


def _sine(sr: int, seconds: float, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _dominant_freq(wave: torch.Tensor, sr: int) -> float:
    spec = np.abs(np.fft.rfft(wave.numpy()))
    return float(np.argmax(spec) * sr / len(wave))


@pytest.mark.parametrize(
    ("subtype", "sr"),
    [("PCM_U8", 8000), ("PCM_16", 16000), ("PCM_24", 44100), ("FLOAT", 48000), ("PCM_32", 22050)],
)
def test_wav_subtypes_and_rates(tmp_path: Path, subtype: str, sr: int) -> None:
    path = tmp_path / f"x_{subtype}.wav"
    sf.write(path, _sine(sr, 0.5), sr, subtype=subtype)
    info = audio_info(path)
    assert info == AudioInfo(duration=0.5, sample_rate=sr, channels=1, frames=int(sr * 0.5))
    wave = load_audio(path, target_sr=16000)
    assert wave.dtype == torch.float32 and wave.ndim == 1
    assert wave.shape[0] == 8000
    assert wave.abs().max() <= 1.0
    assert 0.4 < float(wave.abs().max()) < 0.6  # amplitude survives the conversion
    assert abs(_dominant_freq(wave, 16000) - 440.0) < 5.0


def test_target_rate_is_honoured(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, _sine(16000, 1.0, freq=1000.0), 16000)
    for sr in (8000, 16000, 22050, 48000):
        wave = load_audio(path, target_sr=sr)
        assert wave.shape == (sr,)
        assert abs(_dominant_freq(wave, sr) - 1000.0) < 5.0


@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel_downmix_is_mean(tmp_path: Path, channels: int) -> None:
    sr = 16000
    base = _sine(sr, 0.25)
    gains = np.linspace(-0.5, 1.0, channels).astype(np.float32)
    data = base[:, None] * gains[None, :]  # (N, C)
    path = tmp_path / f"mc{channels}.wav"
    sf.write(path, data, sr, subtype="FLOAT")
    info = audio_info(path)
    assert info.channels == channels and info.frames == len(base)
    assert info.duration == pytest.approx(0.25)
    wave = load_audio(path, target_sr=sr)
    assert wave.shape == (len(base),)
    np.testing.assert_allclose(wave.numpy(), base * gains.mean(), atol=1e-6)


def test_stereo_opposite_channels_cancel(tmp_path: Path) -> None:
    base = _sine(16000, 0.1)
    path = tmp_path / "st.wav"
    sf.write(path, np.stack([base, -base], axis=1), 16000, subtype="PCM_16")
    assert float(load_audio(path).abs().max()) < 1e-4


@pytest.mark.parametrize(("fmt", "ext"), [("FLAC", "flac"), ("OGG", "ogg"), ("MP3", "mp3")])
def test_compressed_formats(tmp_path: Path, fmt: str, ext: str) -> None:
    if fmt not in sf.available_formats():
        pytest.skip(f"libsndfile lacks {fmt}")
    path = tmp_path / f"a.{ext}"
    sf.write(path, _sine(44100, 1.0), 44100, format=fmt)
    wave = load_audio(path, target_sr=16000)
    assert abs(wave.shape[0] - 16000) < 1600  # codecs pad a little
    assert abs(_dominant_freq(wave, 16000) - 440.0) < 5.0
    assert audio_info(path).duration == pytest.approx(1.0, abs=0.1)


def test_error_is_one_line_and_names_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.wav"
    with pytest.raises(AudioError) as err:
        load_audio(path)
    msg = str(err.value)
    assert msg == f"{path}: file not found"
    assert "\n" not in msg
    assert err.value.path == str(path)
    multi = AudioError("x.wav", "line one\nline two")
    assert str(multi) == "x.wav: line one line two"


@pytest.mark.parametrize("fn", [load_audio, audio_info])
def test_missing_dir_empty(tmp_path: Path, fn) -> None:
    with pytest.raises(AudioError, match="file not found"):
        fn(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="is a directory"):
        fn(tmp_path)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: empty file"):
        fn(empty)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads everything")
def test_unreadable_permissions(tmp_path: Path) -> None:
    path = tmp_path / "locked.wav"
    sf.write(path, _sine(16000, 0.1), 16000)
    path.chmod(0)
    try:
        with pytest.raises(AudioError, match="permission denied"):
            load_audio(path)
    finally:
        path.chmod(0o644)


def test_permission_check_via_access(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Root bypasses file modes, so the check is also exercised through os.access.
    path = tmp_path / "locked.wav"
    sf.write(path, _sine(16000, 0.1), 16000)
    monkeypatch.setattr(audio_mod.os, "access", lambda p, mode: False)
    with pytest.raises(AudioError, match="locked.wav: permission denied"):
        load_audio(path)


def test_zero_length_wav(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="zero-length audio"):
        load_audio(path)
    assert audio_info(path).frames == 0


@needs_ffmpeg
def test_text_file_named_wav(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is a shopping list, not audio\neggs\nmilk\n")
    with pytest.raises(AudioError, match=r"notes\.wav: cannot decode audio") as err:
        load_audio(path)
    assert "\n" not in str(err.value)
    with pytest.raises(AudioError, match="notes.wav"):
        audio_info(path)


@needs_ffmpeg
def test_random_bytes_and_broken_flac(tmp_path: Path) -> None:
    noise = tmp_path / "noise.wav"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError, match="cannot decode audio"):
        load_audio(noise)
    good = tmp_path / "good.flac"
    sf.write(good, _sine(16000, 1.0), 16000)
    broken = tmp_path / "broken.flac"
    broken.write_bytes(good.read_bytes()[:100])  # header and a scrap of the first frame
    with pytest.raises(AudioError, match="broken.flac"):
        load_audio(broken)


def _pcm16_bytes(tmp_path: Path, seconds: float = 1.0) -> bytes:
    path = tmp_path / "ref.wav"
    sf.write(path, _sine(16000, seconds), 16000, subtype="PCM_16")
    return path.read_bytes()


def test_truncated_wav_gives_what_is_there(tmp_path: Path) -> None:
    raw = _pcm16_bytes(tmp_path)
    data_at = raw.index(b"data") + 8
    path = tmp_path / "trunc.wav"
    path.write_bytes(raw[: data_at + 2 * 6000])  # header still claims 16000 frames
    assert audio_info(path).frames == 6000
    wave = load_audio(path)
    assert wave.shape == (6000,)
    np.testing.assert_allclose(wave.numpy(), _sine(16000, 1.0)[:6000], atol=1e-3)


@pytest.mark.parametrize("size_field", [0xFFFFFFFF, 0])
def test_wav_header_lies_about_length(tmp_path: Path, size_field: int) -> None:
    if size_field == 0 and not HAS_FFMPEG:
        pytest.skip("a 0-length data chunk is read through ffmpeg")
    raw = bytearray(_pcm16_bytes(tmp_path))
    at = raw.index(b"data") + 4
    raw[at : at + 4] = struct.pack("<I", size_field)  # streaming writers leave these values
    path = tmp_path / "lies.wav"
    path.write_bytes(bytes(raw))
    assert load_audio(path).shape == (16000,)
    assert audio_info(path).duration == pytest.approx(1.0)


def test_non_finite_samples_are_zeroed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = _sine(16000, 0.1)
    data[[3, 10, 20]] = [np.nan, np.inf, -np.inf]
    path = tmp_path / "nan.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="data_prep.audio"):
        wave = load_audio(path)
    assert torch.isfinite(wave).all()
    assert wave[3] == 0 and wave[10] == 0 and wave[20] == 0
    assert any(
        "nan.wav" in r.getMessage() and "3 non-finite" in r.getMessage() for r in caplog.records
    )


def test_out_of_range_float_is_clipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = _sine(16000, 0.1, amp=3.0)
    path = tmp_path / "loud.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="data_prep.audio"):
        wave = load_audio(path)
    assert float(wave.max()) == 1.0 and float(wave.min()) == -1.0
    assert any(
        "loud.wav" in r.getMessage() and "clipping" in r.getMessage() for r in caplog.records
    )


def test_bad_target_sr(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="target_sr"):
        load_audio(tmp_path / "x.wav", target_sr=0)


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=60)


@needs_ffmpeg
def test_video_with_audio_track(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=1000:duration=1", "-f", "lavfi",
            "-i", "testsrc=duration=1:size=64x48:rate=10", "-shortest", str(path))  # fmt: skip
    wave = load_audio(path, target_sr=16000)
    assert abs(wave.shape[0] - 16000) < 800  # AAC priming adds a few ms
    assert abs(_dominant_freq(wave, 16000) - 1000.0) < 5.0
    info = audio_info(path)
    assert info.channels == 1 and info.duration == pytest.approx(1.0, abs=0.1)


@needs_ffmpeg
def test_video_without_audio_track(tmp_path: Path) -> None:
    path = tmp_path / "silent.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=duration=1:size=64x48:rate=10", str(path))
    with pytest.raises(AudioError, match=r"silent\.mp4: no audio stream"):
        load_audio(path)
    with pytest.raises(AudioError, match="no audio stream"):
        audio_info(path)


def test_missing_ffmpeg_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "odd.m4a"
    path.write_bytes(b"\x00\x00\x00\x18ftypM4A " + bytes(64))
    monkeypatch.setattr(audio_mod.shutil, "which", lambda name: None)
    with pytest.raises(AudioError, match="ffmpeg is not installed"):
        load_audio(path)
    with pytest.raises(AudioError, match="ffprobe is not installed"):
        audio_info(path)


def test_cached_resampler_is_torchaudio_resample_exactly() -> None:
    """The tensor path builds each ratio's sinc kernel once; the output is bit-identical to
    ``torchaudio.functional.resample`` (which rebuilds the kernel on every call)."""
    import torchaudio.functional as AF

    from data_prep.audio import _resampler, resample

    gen = torch.Generator().manual_seed(0)
    for orig in (22050, 44100, 8000):
        x = torch.randn(2, orig // 3, generator=gen) * 0.3
        assert torch.equal(resample(x, orig, 16000), AF.resample(x, orig, 16000))
    before = _resampler.cache_info().hits
    resample(torch.zeros(100), 22050, 16000)
    assert _resampler.cache_info().hits == before + 1
    double = torch.randn(300, generator=gen, dtype=torch.float64)  # a kernel per dtype
    assert torch.equal(resample(double, 22050, 16000), AF.resample(double, 22050, 16000))
