"""Encoder and head shapes, padding invariance, pooling, builders."""

import pytest
import torch

from pipeline.models import (
    EncoderConfig,
    MeanPoolClassifier,
    MeanPoolConfig,
    RNNEncoder,
    bilstm_classifier,
    bilstm_ctc,
    bilstm_ctc_small,
)
from pipeline.models.heads import SequencePooling


def _batch(lengths, dim=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    seqs = [torch.randn(n, dim, generator=g) for n in lengths]
    x = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)
    return seqs, x, torch.tensor(lengths)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("subsampling", [1, 2, 4, 8])
@pytest.mark.parametrize("impl", ["padded", "packed"])
def test_encoder_shapes_and_padding_invariance(cell, bidirectional, subsampling, impl):
    torch.manual_seed(0)
    cfg = EncoderConfig(cell=cell, hidden_size=8, num_layers=2, bidirectional=bidirectional, dropout=0.0, subsampling=subsampling, impl=impl)
    enc = RNNEncoder(12, cfg).eval()
    lengths = [17, 9, 4, 1]
    seqs, x, x_lens = _batch(lengths)
    y, y_lens = enc(x, x_lens)
    expected = [-(-n // subsampling) for n in lengths]
    assert y_lens.tolist() == expected
    assert y.shape == (4, max(expected), 8 * (2 if bidirectional else 1))
    assert enc.output_lengths(x_lens).tolist() == expected
    for i, s in enumerate(seqs):
        single, n = enc(s.unsqueeze(0), torch.tensor([s.size(0)]))
        torch.testing.assert_close(y[i, : int(n)], single[0], atol=1e-5, rtol=1e-4)
        # padded frames are exactly zero
        assert torch.count_nonzero(y[i, int(n):]) == 0


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_encoder_matches_torch_bidirectional_rnn_on_packed_sequences(cell):
    """Per-direction layers with within-length reversal == torch's fused bidirectional RNN."""
    torch.manual_seed(1)
    enc = RNNEncoder(12, EncoderConfig(cell=cell, hidden_size=8, num_layers=2, dropout=0.0)).eval()
    ref = getattr(torch.nn, cell.upper())(12, 8, num_layers=2, bidirectional=True, batch_first=True).eval()
    with torch.no_grad():
        for layer, directions in enumerate(enc.layers):
            for suffix, rnn in zip(["", "_reverse"], directions, strict=True):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(ref, f"{name}_l{layer}{suffix}").copy_(getattr(rnn, f"{name}_l0"))
    _, x, x_lens = _batch([11, 7, 3])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, x_lens, batch_first=True)
    expected, _ = torch.nn.utils.rnn.pad_packed_sequence(ref(packed)[0], batch_first=True)
    for impl in ("padded", "packed"):
        object.__setattr__(enc.cfg, "impl", impl)
        y, _ = enc(x, x_lens)
        torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("impl", ["padded", "packed"])
def test_layer_norm_encoder_is_padding_invariant_and_normalises_each_frame(impl):
    torch.manual_seed(3)
    cfg = EncoderConfig(cell="lstm", hidden_size=8, num_layers=2, dropout=0.0, subsampling=2, impl=impl, layer_norm=True)
    enc = RNNEncoder(12, cfg).eval()
    assert len(enc.norms) == 2 and enc.norms[0].normalized_shape == (16,)
    seqs, x, x_lens = _batch([15, 6, 1])
    with torch.no_grad():
        y, y_lens = enc(x, x_lens)
        for i, s in enumerate(seqs):
            single, n = enc(s.unsqueeze(0), torch.tensor([s.size(0)]))
            torch.testing.assert_close(y[i, : int(n)], single[0], atol=1e-5, rtol=1e-4)
            assert torch.count_nonzero(y[i, int(n):]) == 0
    # with the initial affine (1, 0), each valid output frame has zero mean and unit variance
    valid = y[0, : int(y_lens[0])]
    torch.testing.assert_close(valid.mean(-1), torch.zeros(valid.size(0)), atol=1e-5, rtol=0)
    torch.testing.assert_close(valid.var(-1, unbiased=False), torch.ones(valid.size(0)), atol=1e-3, rtol=0)
    assert RNNEncoder(12, EncoderConfig(hidden_size=8)).norms is None  # off by default


def test_invalid_encoder_options():
    with pytest.raises(ValueError, match="impl"):
        RNNEncoder(4, EncoderConfig(impl="fast"))
    with pytest.raises(ValueError, match="cell"):
        RNNEncoder(4, EncoderConfig(cell="transformer"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="subsampling"):
        RNNEncoder(4, EncoderConfig(subsampling=3))


def test_ctc_model_outputs_log_probs():
    model = bilstm_ctc(input_dim=12, vocab_size=7, hidden_size=8, num_layers=1, subsampling=2).eval()
    _, x, x_lens = _batch([10, 6])
    lp, lens = model(x, x_lens)
    assert lp.shape == (2, 5, 7) and lens.tolist() == [5, 3]
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(2, 5))
    assert lp.dtype == torch.float32


def test_ctc_small_preset_builds():
    m = bilstm_ctc_small()
    assert m.cfg.input_dim == 80 and m.cfg.vocab_size == 29
    assert 1e6 < sum(p.numel() for p in m.parameters()) < 5e6


@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
def test_classifier_heads_are_padding_invariant(pooling):
    torch.manual_seed(0)
    model = bilstm_classifier(input_dim=12, num_classes=5, hidden_size=8, pooling=pooling).eval()
    seqs, x, x_lens = _batch([9, 3, 6])
    logits = model(x, x_lens)
    assert logits.shape == (3, 5)
    for i, s in enumerate(seqs):
        torch.testing.assert_close(logits[i], model(s.unsqueeze(0), torch.tensor([s.size(0)]))[0], atol=1e-5, rtol=1e-4)


def test_last_pooling_takes_forward_end_and_backward_start():
    y = torch.arange(2 * 4 * 4, dtype=torch.float32).view(2, 4, 4)
    pooled = SequencePooling(4, "last", bidirectional=True)(y, torch.tensor([3, 4]))
    torch.testing.assert_close(pooled[0], torch.cat([y[0, 2, :2], y[0, 0, 2:]]))
    torch.testing.assert_close(pooled[1], torch.cat([y[1, 3, :2], y[1, 0, 2:]]))


def test_mean_pool_baseline_ignores_order():
    model = MeanPoolClassifier(MeanPoolConfig(input_dim=12, num_classes=4)).eval()
    _, x, x_lens = _batch([8])
    torch.testing.assert_close(model(x, x_lens), model(x.flip(1), x_lens))
    # while the recurrent classifier does not
    rnn = bilstm_classifier(input_dim=12, num_classes=4, hidden_size=8).eval()
    assert not torch.allclose(rnn(x, x_lens), rnn(x.flip(1), x_lens))


def test_ctc_upsampling_doubles_output_frames():
    model = bilstm_ctc(input_dim=12, vocab_size=7, hidden_size=8, num_layers=1, subsampling=4, ctc_upsample=2).eval()
    seqs, x, x_lens = _batch([16, 7])
    lp, lens = model(x, x_lens)
    assert lp.shape == (2, 8, 7) and lens.tolist() == [8, 4]
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(2, 8))
    assert model.frame_ratio == 2.0
    single, n = model(seqs[1].unsqueeze(0), torch.tensor([7]))
    torch.testing.assert_close(lp[1, : int(n)], single[0], atol=1e-5, rtol=1e-4)


def test_utterance_cmn_is_padding_invariant_and_zero_mean():
    from pipeline.models.normalize import utterance_mean_norm

    seqs, x, x_lens = _batch([9, 4])
    y = utterance_mean_norm(x, x_lens)
    torch.testing.assert_close(y[1, :4].mean(0), torch.zeros(12), atol=1e-6, rtol=0)
    assert torch.count_nonzero(y[1, 4:]) == 0
    torch.testing.assert_close(y[1, :4], utterance_mean_norm(seqs[1].unsqueeze(0), torch.tensor([4]))[0])
    model = bilstm_ctc(input_dim=12, vocab_size=7, hidden_size=8, num_layers=1, subsampling=2).eval()
    object.__setattr__(model.cfg, "utterance_cmn", True)
    lp, _ = model(x, x_lens)
    torch.testing.assert_close(lp[1, :2], model(seqs[1].unsqueeze(0), torch.tensor([4]))[0][0], atol=1e-5, rtol=1e-4)


def test_layer_mix_is_a_softmax_weighted_sum_of_stacked_layers():
    """input_layers=L: (B, T, L*D) frames are mixed by learned softmax weights to (B, T, D)."""
    from pipeline.models.ctc_model import CTCModel, CTCModelConfig, LayerWeightedSum

    mix = LayerWeightedSum(3)
    x = torch.randn(2, 5, 3 * 4)
    assert torch.allclose(mix(x), x.view(2, 5, 3, 4).mean(dim=2), atol=1e-6)  # equal at start
    with torch.no_grad():
        mix.logits.copy_(torch.tensor([0.0, 50.0, 0.0]))
    assert torch.allclose(mix(x), x[..., 4:8], atol=1e-5)  # all weight on layer 1
    model = CTCModel(CTCModelConfig(input_dim=12, input_layers=3, encoder=EncoderConfig(hidden_size=8, num_layers=1)))
    lp, lens = model(x, torch.tensor([5, 3]))
    lp.sum().backward()
    assert model.layer_mix.logits.grad is not None and lp.shape[:2] == (2, 5)
    with pytest.raises(ValueError, match="multiple of input_layers"):
        CTCModel(CTCModelConfig(input_dim=10, input_layers=3))


def _arch(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_the_factories_build_what_the_recipes_train():
    """bilstm_ctc / bilstm_classifier take every config field, so the recipes' default models
    (recipes/*/conf/default.yaml) are one call away, parameter for parameter."""
    from dataclasses import asdict, replace

    from pipeline.config import load_config
    from pipeline.models import CTCModel, SequenceClassifier
    from recipes.speech_ctc.stages import DEFAULT_CONFIG as SPEECH_DEFAULT
    from recipes.speech_ctc.stages import SpeechRecipeConfig
    from recipes.video_activity.stages import DEFAULT_CONFIG as VIDEO_DEFAULT
    from recipes.video_activity.stages import VideoRecipeConfig

    speech = load_config(SpeechRecipeConfig, SPEECH_DEFAULT).model
    flat = {**{k: v for k, v in asdict(speech).items() if k != "encoder"}, **asdict(speech.encoder)}
    assert speech.encoder.layer_norm and speech.ctc_upsample == 2  # the fields the old factory lacked
    assert _arch(bilstm_ctc(**flat)) == _arch(CTCModel(speech))
    video = replace(load_config(VideoRecipeConfig, VIDEO_DEFAULT).model, input_dim=96, num_classes=10)
    flat = {**{k: v for k, v in asdict(video).items() if k != "encoder"}, **asdict(video.encoder)}
    assert _arch(bilstm_classifier(**flat)) == _arch(SequenceClassifier(video))
    with pytest.raises(TypeError, match="hiden_size"):
        bilstm_ctc(hiden_size=3)
