"""Numpy waveforms as inputs of ``transcribe`` on both engines: the same result as the same audio
in a file, at any sample rate and channel count, long ones through the chunked path, and one
error line for an array that cannot be audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from bundles import synthetic_speech, tiny_speech_bundle

from pipeline.errors import InputError
from pipeline.inference.common import ArrayInput, array_waveform

SR = 16000


def _speech(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    return synthetic_speech(seconds, sr, seed)


def _same(a, b) -> None:
    assert a.error is None and b.error is None, (a.error, b.error)
    assert a.text == b.text and a.words == b.words
    assert a.duration == pytest.approx(b.duration, abs=1e-3)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return tiny_speech_bundle(tmp_path_factory.mktemp("arrays") / "bundle", graph=True)


@pytest.fixture(scope="module", params=["lite", "torch"])
def engine(request, bundle: Path):
    from pipeline.inference.engines import load_transcriber

    return load_transcriber(bundle, engine=request.param, lm="none")


def test_an_array_gives_what_its_file_gives(engine, tmp_path: Path) -> None:
    wave = _speech(1.7)
    sf.write(tmp_path / "a.wav", wave, SR, subtype="FLOAT")
    for skip in (True, False):
        from_file, from_array = engine.transcribe([tmp_path / "a.wav", wave], skip_silence=skip)
        _same(from_array, from_file)
        assert from_array.path == "<array 1>"
    assert not engine.transcribe(wave, skip_silence=False)[0].error  # one array alone
    assert (
        engine.transcribe([wave.astype(np.float64)], skip_silence=False)[0].text == from_file.text
    )


def test_an_8khz_array_is_resampled_as_its_file_is(engine, tmp_path: Path) -> None:
    wave = _speech(1.3, 8000, seed=1)
    sf.write(tmp_path / "b.wav", wave, 8000, subtype="FLOAT")
    from_file = engine.transcribe([tmp_path / "b.wav"], skip_silence=False)[0]
    from_array = engine.transcribe([wave], sample_rate=8000, skip_silence=False)[0]
    _same(from_array, from_file)
    assert from_array.duration == pytest.approx(1.3, abs=1e-3) and from_array.text


def test_stereo_is_averaged(engine, tmp_path: Path) -> None:
    left = _speech(1.2, seed=2)
    stereo = np.stack([left, 0.5 * left[::-1]], axis=1)  # (N, 2)
    sf.write(tmp_path / "s.wav", stereo, SR, subtype="FLOAT")
    _same(
        engine.transcribe([stereo], skip_silence=False)[0],
        engine.transcribe([tmp_path / "s.wav"], skip_silence=False)[0],
    )


def test_a_long_array_takes_the_chunked_path_as_its_file_does(
    engine, tmp_path: Path, monkeypatch
) -> None:
    from pipeline.inference import long_audio

    chunked = []
    real = long_audio.transcribe_long

    def spy(transcriber, path, **kw):
        chunked.append((str(path), kw.get("samples") is not None))
        return real(transcriber, path, **kw)

    monkeypatch.setattr(long_audio, "transcribe_long", spy)
    wave = np.zeros(61 * SR, np.float32)  # silence costs nothing to decode
    wave[2 * SR : 2 * SR + int(1.7 * SR)] = _speech(1.7)
    wave[40 * SR : 40 * SR + int(1.7 * SR)] = _speech(1.7, seed=3)
    sf.write(tmp_path / "long.wav", wave, SR, subtype="FLOAT")
    from_file, from_array = engine.transcribe([tmp_path / "long.wav", wave])
    assert chunked == [(str(tmp_path / "long.wav"), False), ("<array 1>", True)]
    _same(from_array, from_file)
    assert from_array.text  # the speech was heard and decoded
    assert from_array.duration == pytest.approx(61.0) and from_array.path == "<array 1>"


BAD = {
    "int16": (np.zeros(SR, np.int16), "dtype int16"),
    "3-D": (np.zeros((10, 2, 2), np.float32), "got (10, 2, 2)"),
    "empty": (np.zeros(0, np.float32), "empty array"),
    "nan": (np.r_[np.zeros(SR, np.float32), np.nan], "NaN or infinite"),
    "inf": (np.full(SR, np.inf, np.float32), "NaN or infinite"),
    "channels first": (np.zeros((2, SR), np.float32), "channels first"),
}


def test_bad_arrays_give_one_error_each_and_the_others_go_on(engine) -> None:
    good = _speech(1.0)
    results = engine.transcribe([good, *(a for a, _ in BAD.values()), good])
    assert results[0].error is None and results[-1].error is None
    for k, (res, (_, why)) in enumerate(zip(results[1:-1], BAD.values(), strict=True), start=1):
        assert (
            res.path == f"<array {k}>"
            and res.error.startswith(f"<array {k}>: ")
            and why in res.error
        ), res.error
        assert "\n" not in res.error
    with pytest.raises(InputError, match="NaN"):
        engine.transcribe([BAD["nan"][0]], raise_errors=True)


@pytest.mark.parametrize("rate", [0, 999, 16000.5, True, "16000", 2_000_000])
def test_a_bad_sample_rate_is_refused_at_once(engine, rate) -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        engine.transcribe([_speech(0.5)], sample_rate=rate)


def test_array_waveform_rules() -> None:
    wave = np.linspace(-2, 2, 1000, dtype=np.float32)[:, None].repeat(2, axis=1)
    out = array_waveform(ArrayInput("<array 0>", wave), SR, SR)
    assert (
        out.dtype == np.float32 and out.shape == (1000,) and out.max() == 1.0 and out.min() == -1.0
    )
    down = array_waveform(ArrayInput("<array 0>", np.zeros(8000, np.float32)), 8000, SR)
    assert down.shape == (SR,)
    from pipeline.limits import LimitError, Limits, use_limits

    with use_limits(Limits(max_audio_s=0.5)), pytest.raises(LimitError, match="max-audio-duration"):
        array_waveform(ArrayInput("<array 0>", np.zeros(SR, np.float32)), SR, SR)
