"""Fine-tuning the upstream's top blocks: model.upstream_blocks with features.upstream_layers=k."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from data_prep.features import FeatureConfig, get_extractor
from data_prep.whisper_upstream import WhisperUpstream
from pipeline.models.ctc_model import CTCModel, CTCModelConfig
from pipeline.models.encoder import EncoderConfig
from pipeline.models.upstream_top import WINDOW_FRAMES, UpstreamTop
from pipeline.training.schedule import adamw, param_groups

SR = 16000


def _wave(seconds: float, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    wave = 0.3 * np.sin(2 * np.pi * 180 * t) * np.sin(2 * np.pi * 3 * t) + 0.02 * rng.standard_normal(t.size)
    return torch.from_numpy(wave.astype(np.float32))


@pytest.fixture(scope="module")
def encoder():
    return WhisperUpstream.from_name("whisper_tiny_en").encoder


def _model(blocks: int, dim: int = 384) -> CTCModel:
    enc = EncoderConfig(hidden_size=32, num_layers=1, subsampling=2, layer_norm=True)
    return CTCModel(CTCModelConfig(input_dim=dim, upstream_blocks=blocks, encoder=enc))


@pytest.mark.parametrize("blocks", [1, 2, 4])
def test_pretrained_top_blocks_reproduce_the_encoder_output(encoder, blocks):
    """Hidden state 4 - n through the copied top n blocks is the encoder's own output."""
    wave = _wave(2.3)
    below = get_extractor(FeatureConfig(kind="whisper_tiny_en", upstream_layers=4 - blocks))(wave)
    last = get_extractor(FeatureConfig(kind="whisper_tiny_en"))(wave)
    top = UpstreamTop(384, blocks)
    top.load_pretrained(encoder)
    with torch.no_grad():
        out = top(below[None], torch.tensor([below.shape[0]]))[0]
    torch.testing.assert_close(out, last, atol=1e-3, rtol=1e-3)
    assert not torch.allclose(below, last, atol=1e-2)  # the blocks did something


def test_output_does_not_depend_on_padding_or_batch():
    torch.manual_seed(0)
    top = UpstreamTop(128, 2).eval()
    a, b = torch.randn(1, 40, 128), torch.randn(1, 70, 128)
    batch = torch.zeros(2, 70, 128)
    batch[0, :40], batch[1] = a[0], b[0]
    batch[0, 40:] = 1e3  # garbage in the padding must not leak into valid frames
    with torch.no_grad():
        together = top(batch, torch.tensor([40, 70]))
        alone = top(a, torch.tensor([40]))
    torch.testing.assert_close(together[0, :40], alone[0], atol=1e-4, rtol=1e-4)


def test_long_inputs_attend_within_windows_of_30_s():
    torch.manual_seed(0)
    top = UpstreamTop(64, 1).eval()
    t = WINDOW_FRAMES + 500  # two windows of 1000 frames
    x = torch.randn(1, t, 64)
    with torch.no_grad():
        whole = top(x, torch.tensor([t]))
        changed = x.clone()
        changed[0, -1] += 10.0  # a frame in the second window
        again = top(changed, torch.tensor([t]))
    assert torch.equal(whole[0, :1000], again[0, :1000])  # the first window never sees it
    assert not torch.allclose(whole[0, 1000:-1], again[0, 1000:-1])  # the second one does
    # A short sequence batched with a long one: its empty second window stays finite.
    with torch.no_grad():
        out = top(torch.cat([x, x]), torch.tensor([t, 10]))
    assert torch.isfinite(out).all()


def test_load_pretrained_refuses_a_mismatch(encoder):
    with pytest.raises(ValueError, match="5 blocks"):
        UpstreamTop(384, 5).load_pretrained(encoder)
    with pytest.raises(ValueError, match="width 256"):
        UpstreamTop(256, 1).load_pretrained(encoder)


def test_config_checks():
    with pytest.raises(ValueError, match="input_layers 1"):
        CTCModelConfig(input_dim=384 * 5, input_layers=5, upstream_blocks=1)
    with pytest.raises(ValueError, match="upstream_layers"):
        FeatureConfig(kind="whisper_tiny_en", upstream_layers=5)
    assert FeatureConfig(kind="whisper_tiny_en", upstream_layers=2).dim == 384


def test_pretrained_blocks_learn_at_a_lower_rate():
    model = _model(2)
    groups = param_groups(model, 1e-3, 0.1)
    assert len(groups) == 2
    opt = adamw(groups, lr=1e-3)
    lrs = [g["lr"] for g in opt.param_groups]
    assert lrs == pytest.approx([1e-3, 1e-4])
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].startswith("upstream_top.") for p in opt.param_groups[1]["params"])
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    # A model without pretrained parameters keeps one group at the base rate.
    assert [g["lr"] for g in adamw(param_groups(_model(0), 1e-3, 0.1), lr=1e-3).param_groups] == [1e-3]


def test_recipe_refuses_features_that_do_not_sit_below_the_blocks():
    from recipes.speech_ctc.stages import SpeechRecipe, SpeechRecipeConfig

    feats = FeatureConfig(kind="whisper_tiny_en", upstream_layers=3)
    cfg = SpeechRecipeConfig(features=feats, model=CTCModelConfig(input_dim=384, upstream_blocks=2))
    with pytest.raises(ValueError, match="upstream_layers=2"):
        SpeechRecipe(cfg)


@pytest.mark.slow
def test_tiny_recipe_fine_tunes_the_top_blocks_and_ships_them(tmp_path):
    """Training moves the pretrained blocks, the bundle holds them and transcribes."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    from pipeline.inference.transcriber import Transcriber
    from recipes.speech_ctc.run import main as recipe_main
    from recipes.speech_ctc.stages import DEFAULT_CONFIG

    exp = tmp_path / "exp"
    results = recipe_main([
        "--config", str(DEFAULT_CONFIG.parent / "tiny.yaml"), "--exp-dir", str(exp), "train.max_epochs=2",
        "features.kind=whisper_tiny_en", "features.upstream_layers=3", "model.input_dim=384",
        "model.upstream_blocks=1", "decode.beam_size=1", "lm.enabled=false",
    ])  # fmt: skip
    assert results["metrics"]["test"]["utterances"] > 0
    tr = Transcriber.from_pretrained(exp / "bundle")
    shipped = tr.model.upstream_top.blocks[0].fc1.weight.detach()
    original = WhisperUpstream.from_name("whisper_tiny_en").encoder.blocks[3].fc1.weight
    assert shipped.shape == original.shape
    moved = (shipped.float() - original).abs()
    assert moved.max() > 1e-5  # fine-tuned, not frozen (an experiment bundle is float32)
    assert moved.mean() < 0.05 * original.abs().mean()  # but still close to the pretrained block
    wav = sorted((exp / "corpus" / "wavs" / "test").glob("*.wav"))[0]
    result = tr.transcribe([wav])[0]
    assert result.error is None and result.duration > 0
