"""Parameter counts of model configs, computed from the sizes alone (nothing is allocated).

A bundle's ``config.yaml`` is untrusted: sizes within each field's own bounds can still add up
to billions of parameters (a 16-layer BiLSTM of width 4096 is 6.3e9, 25 GB of float32), which
``nn.Module`` would allocate before a single weight is read. The loaders count first and refuse
a config over ``max_params`` (:func:`check_params`). Each count is the exact
``sum(p.numel() for p in model.parameters())`` of the model the config builds
(``tests/test_robust_limits.py`` checks it against real models); buffers (the CMVN statistics)
are a few vectors and not counted. Torch-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.limits import LimitError, current_limits

if TYPE_CHECKING:
    from pipeline.models.classifier import ClassifierConfig
    from pipeline.models.ctc_model import CTCModelConfig
    from pipeline.models.encoder import EncoderConfig

#: Weight matrices per RNN cell (input, forget, cell, output gates for an LSTM; reset, update,
#: new for a GRU), as ``nn.LSTM``/``nn.GRU``/``nn.RNN`` stack them.
_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
#: Stride-2 conv stages of each subsampling factor (as ``pipeline.models.encoder``).
_STAGES = {1: 0, 2: 1, 4: 2, 8: 3}


def linear_params(n_in: int, n_out: int) -> int:
    """``nn.Linear(n_in, n_out)``: weight and bias."""
    return n_in * n_out + n_out


def encoder_params(input_dim: int, cfg: EncoderConfig) -> int:
    """``RNNEncoder(input_dim, cfg)``: conv subsampling, the RNN layers, their LayerNorms."""
    h = cfg.hidden_size
    gates = _GATES[cfg.cell]
    directions = 2 if cfg.bidirectional else 1
    total, dim = 0, input_dim
    for _ in range(_STAGES[cfg.subsampling]):  # Conv1d(dim, h, kernel 3)
        total += dim * h * 3 + h
        dim = h
    for _ in range(cfg.num_layers):  # per direction: weight_ih, weight_hh, bias_ih, bias_hh
        total += directions * gates * h * (dim + h + 2)
        dim = h * directions
    if cfg.layer_norm:
        total += cfg.num_layers * 2 * dim
    return total


def upstream_top_params(dim: int, num_blocks: int) -> int:
    """``UpstreamTop(dim, num_blocks)``: pre-LayerNorm transformer blocks and a final LayerNorm.

    A block is two LayerNorms, the fused q/k/v projection, the output projection and a 4x MLP:
    ``4d + (3d^2 + 3d) + (d^2 + d) + (4d^2 + 4d) + (4d^2 + d) = 12d^2 + 13d``.
    """
    return num_blocks * (12 * dim * dim + 13 * dim) + 2 * dim


def ctc_model_params(cfg: CTCModelConfig) -> int:
    """``CTCModel(cfg)``: layer mix, upstream top blocks, encoder and CTC head."""
    encoder_dim = cfg.encoder.hidden_size * (2 if cfg.encoder.bidirectional else 1)
    total = cfg.input_layers if cfg.input_layers > 1 else 0
    if cfg.upstream_blocks:
        total += upstream_top_params(cfg.input_dim, cfg.upstream_blocks)
    total += encoder_params(cfg.input_dim // cfg.input_layers, cfg.encoder)
    return total + linear_params(encoder_dim, cfg.vocab_size * cfg.ctc_upsample)


def classifier_params(cfg: ClassifierConfig) -> int:
    """``SequenceClassifier(cfg)``: encoder, attention pooling (if chosen) and the classifier."""
    encoder_dim = cfg.encoder.hidden_size * (2 if cfg.encoder.bidirectional else 1)
    pooling = linear_params(encoder_dim, 1) if cfg.pooling == "attention" else 0
    return encoder_params(cfg.input_dim, cfg.encoder) + pooling + linear_params(encoder_dim, cfg.num_classes)


def check_params(cfg_path: str | Path, count: int) -> int:
    """``count``, checked against ``max_params`` before the model it counts is built.

    Raises:
        LimitError: over the limit; the message names ``cfg_path``, the count and the flag.
    """
    limit = current_limits().max_params
    if count > limit:
        raise LimitError(cfg_path, f"the model config implies {count:,} parameters", "max_params", limit)
    return count
