"""Speech recogniser: global CMVN -> RNN encoder -> CTC head."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from pipeline.models.encoder import MAX_DIM, MAX_LAYERS, EncoderConfig, RNNEncoder, check_range
from pipeline.models.heads import CTCHead
from pipeline.models.normalize import GlobalCMVN, utterance_mean_norm
from pipeline.models.upstream_top import UpstreamTop


@dataclass(frozen=True)
class CTCModelConfig:
    """Architecture of :class:`CTCModel`."""

    input_dim: int = 80
    input_layers: int = 1  # > 1: a frame is that many upstream layers side by side (weighted sum)
    vocab_size: int = 29
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    ctc_upsample: int = 1  # output frames per encoder frame (see CTCHead)
    utterance_cmn: bool = False  # also subtract each utterance's own mean (speaker/channel)
    # > 0: the top blocks of the upstream encoder run inside the model and train with it; the
    # features are then the hidden state below them (see pipeline/models/upstream_top.py).
    upstream_blocks: int = 0

    def __post_init__(self) -> None:
        check_range("model.input_dim", self.input_dim, 1, MAX_DIM)
        check_range("model.input_layers", self.input_layers, 1, 64)
        check_range("model.vocab_size", self.vocab_size, 2, 100_000)
        check_range("model.ctc_upsample", self.ctc_upsample, 1, 8)
        check_range("model.upstream_blocks", self.upstream_blocks, 0, MAX_LAYERS)
        if self.upstream_blocks and (self.input_layers != 1 or self.input_dim % 64):
            raise ValueError(
                "model.upstream_blocks needs one upstream layer per frame (input_layers 1) and an "
                f"input_dim that is a multiple of 64 (attention heads), got {self.input_layers} "
                f"and {self.input_dim}"
            )


class LayerWeightedSum(nn.Module):
    """SUPERB's learned layer mix: (B, T, L * D) stacked upstream layers -> (B, T, D).

    The weights are a softmax over ``L`` learned scalars, starting equal.
    """

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        layers = x.view(b, t, self.logits.numel(), d // self.logits.numel())
        weights = torch.softmax(self.logits, dim=0).to(x.dtype)
        return torch.einsum("btld,l->btd", layers, weights)


class CTCModel(nn.Module):
    """Features (log-mel or upstream frames) to per-frame log-probabilities (blank = 0).

    Frames go through the global CMVN, or, with ``upstream_blocks`` > 0, through the trainable
    top blocks of the upstream (which end in the upstream's own LayerNorm, so no CMVN), then
    the optional per-utterance mean subtraction, SpecAugment in training, the RNN encoder and
    the CTC head.
    """

    def __init__(self, cfg: CTCModelConfig) -> None:
        super().__init__()
        if cfg.input_layers < 1 or cfg.input_dim % cfg.input_layers:
            raise ValueError(
                f"input_dim {cfg.input_dim} must be a multiple of input_layers {cfg.input_layers}"
            )
        self.cfg = cfg
        self.cmvn = GlobalCMVN(cfg.input_dim)
        self.layer_mix = LayerWeightedSum(cfg.input_layers) if cfg.input_layers > 1 else None
        self.upstream_top = (
            UpstreamTop(cfg.input_dim, cfg.upstream_blocks) if cfg.upstream_blocks else None
        )
        self.encoder = RNNEncoder(cfg.input_dim // cfg.input_layers, cfg.encoder)
        self.head = CTCHead(self.encoder.output_dim, cfg.vocab_size, cfg.ctc_upsample)

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """Parameters that start from pretrained weights (the upstream's top blocks), which the
        trainer updates at ``train.pretrained_lr_scale`` times the learning rate."""
        return [] if self.upstream_top is None else list(self.upstream_top.parameters())

    @property
    def frame_ratio(self) -> float:
        """Input feature frames per output (CTC) frame: subsampling / upsampling."""
        return self.cfg.encoder.subsampling / self.cfg.ctc_upsample

    def forward(
        self,
        x: torch.Tensor,
        x_lens: torch.Tensor,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Computes CTC log-probabilities.

        Args:
            x: (B, T, D) raw features (normalised inside by the stored CMVN, or run through the
                upstream's top blocks with ``upstream_blocks``); with
                ``input_layers`` L > 1, D = L * D' stacked layers mixed down to D'.
            x_lens: (B,) valid lengths.
            augment: Optional (B, T, D) -> (B, T, D) transform applied after normalisation
                (SpecAugment during training).

        Returns:
            log-probs (B, T'', V) in float32 and output lengths (B,), with
            T'' = ceil(T / subsampling) * ctc_upsample.
        """
        if self.upstream_top is not None:
            x = self.upstream_top(x, x_lens)
        else:
            x = self.cmvn(x)
        if self.layer_mix is not None:
            x = self.layer_mix(x)
        if self.cfg.utterance_cmn:
            x = utterance_mean_norm(x, x_lens)
        if augment is not None:
            x = augment(x)
        y, y_lens = self.encoder(x, x_lens)
        return self.head(y, y_lens)


def bilstm_ctc(
    *,
    input_dim: int = 80,
    vocab_size: int = 29,
    input_layers: int = 1,
    ctc_upsample: int = 1,
    utterance_cmn: bool = False,
    upstream_blocks: int = 0,
    **encoder: Any,
) -> CTCModel:
    """Builds a CTC model from keyword arguments (the same model as ``CTCModel(CTCModelConfig(...))``).

    Args:
        input_dim, vocab_size, input_layers, ctc_upsample, utterance_cmn, upstream_blocks: As
            in :class:`CTCModelConfig`.
        **encoder: Any :class:`~pipeline.models.encoder.EncoderConfig` field (``cell``,
            ``hidden_size``, ``num_layers``, ``bidirectional``, ``dropout``, ``subsampling``,
            ``impl``, ``layer_norm``); unset ones take this factory's defaults (a 3 x 256
            BiLSTM, dropout 0.1, subsampling 2) rather than EncoderConfig's.

    Example:
        >>> m = bilstm_ctc(input_dim=384, hidden_size=160, layer_norm=True, dropout=0.3, ctc_upsample=2)

    Raises:
        TypeError: an argument that is not a field of either config.
    """
    unknown = set(encoder) - {f.name for f in fields(EncoderConfig)}
    if unknown:
        raise TypeError(f"bilstm_ctc() got unknown argument(s) {sorted(unknown)}")
    enc = EncoderConfig(**{**_CTC_ENCODER_DEFAULTS, **encoder})
    return CTCModel(CTCModelConfig(
        input_dim=input_dim, vocab_size=vocab_size, input_layers=input_layers, encoder=enc,
        ctc_upsample=ctc_upsample, utterance_cmn=utterance_cmn, upstream_blocks=upstream_blocks,
    ))  # fmt: skip


#: What :func:`bilstm_ctc` builds for the encoder fields it is not given.
_CTC_ENCODER_DEFAULTS: dict[str, Any] = {
    "cell": "lstm", "hidden_size": 256, "num_layers": 3, "bidirectional": True, "dropout": 0.1, "subsampling": 2,
}


def bilstm_ctc_small() -> CTCModel:
    """A small preset (about 1.9 M parameters) that trains on a 2-core CPU in minutes."""
    return bilstm_ctc(hidden_size=192, num_layers=3, subsampling=2)
