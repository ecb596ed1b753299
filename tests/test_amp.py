"""Precision choices (pipeline.amp) and the bf16 paths that use them."""

import pytest
import torch

from pipeline import amp
from pipeline.models import EncoderConfig, RNNEncoder

CPU = torch.device("cpu")


def test_resolve_precision_on_cpu(monkeypatch):
    assert amp.resolve_precision("fp32", CPU) is None
    assert amp.resolve_precision("bf16", CPU) is torch.bfloat16
    assert amp.resolve_precision("fp16", CPU) is None  # fp16 autocast is CUDA only
    monkeypatch.setattr(amp, "cpu_has_native_bf16", lambda: True)
    assert amp.resolve_precision("auto", CPU) is torch.bfloat16
    monkeypatch.setattr(amp, "cpu_has_native_bf16", lambda: False)
    assert amp.resolve_precision("auto", CPU) is None  # emulated bf16 would be slower
    with pytest.raises(ValueError, match="precision"):
        amp.resolve_precision("fp8", CPU)


def test_autocast_context():
    lin = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with amp.autocast(CPU, None):
        assert lin(x).dtype == torch.float32
    with amp.autocast(CPU, torch.bfloat16):
        assert lin(x).dtype == torch.bfloat16


def test_bf16_encoder_close_to_fp32_and_padding_invariant():
    torch.manual_seed(0)
    enc = RNNEncoder(12, EncoderConfig(cell="lstm", hidden_size=16, num_layers=2, dropout=0.0, subsampling=2)).eval()
    x = torch.randn(3, 20, 12)
    lens = torch.tensor([20, 13, 5])
    ref, _ = enc(x, lens)
    with amp.autocast(CPU, torch.bfloat16):
        y, _ = enc(x, lens)
        single, _ = enc(x[2:, :5], lens[2:])
    assert y.dtype == torch.bfloat16
    assert (y.float() - ref).abs().max() < 0.05  # bf16 keeps ~3 significant digits
    assert torch.count_nonzero(y[2, 3:]) == 0  # padding stays exactly zero
    torch.testing.assert_close(y[2, :3].float(), single[0].float(), atol=0.02, rtol=0.05)


def test_lstm_forget_gates_start_open():
    enc = RNNEncoder(6, EncoderConfig(cell="lstm", hidden_size=5, num_layers=2))
    for directions in enc.layers:
        for rnn in directions:
            total = rnn.bias_ih_l0 + rnn.bias_hh_l0  # gate order i, f, g, o
            assert torch.all(total[5:10] == 1.0)
            assert not torch.all(total[:5] == 1.0)
