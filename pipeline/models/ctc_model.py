"""Speech recogniser: global CMVN -> RNN encoder -> CTC head."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from pipeline.models.encoder import EncoderConfig, RNNEncoder
from pipeline.models.heads import CTCHead
from pipeline.models.normalize import GlobalCMVN, utterance_mean_norm


@dataclass(frozen=True)
class CTCModelConfig:
    """Architecture of :class:`CTCModel`."""

    input_dim: int = 80
    vocab_size: int = 29
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    ctc_upsample: int = 1  # output frames per encoder frame (see CTCHead)
    utterance_cmn: bool = False  # also subtract each utterance's own mean (speaker/channel)


class CTCModel(nn.Module):
    """Log-mel features to per-frame log-probabilities over the vocabulary (blank = 0)."""

    def __init__(self, cfg: CTCModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.cmvn = GlobalCMVN(cfg.input_dim)
        self.encoder = RNNEncoder(cfg.input_dim, cfg.encoder)
        self.head = CTCHead(self.encoder.output_dim, cfg.vocab_size, cfg.ctc_upsample)

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
            x: (B, T, D) raw log-mel features (normalised inside by the stored CMVN).
            x_lens: (B,) valid lengths.
            augment: Optional (B, T, D) -> (B, T, D) transform applied after normalisation
                (SpecAugment during training).

        Returns:
            log-probs (B, T'', V) in float32 and output lengths (B,), with
            T'' = ceil(T / subsampling) * ctc_upsample.
        """
        x = self.cmvn(x)
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
    cell: str = "lstm",
    hidden_size: int = 256,
    num_layers: int = 3,
    bidirectional: bool = True,
    dropout: float = 0.1,
    subsampling: int = 2,
    ctc_upsample: int = 1,
) -> CTCModel:
    """Builds a CTC model; every argument is keyword-only."""
    enc = EncoderConfig(
        cell=cell,  # type: ignore[arg-type]
        hidden_size=hidden_size,
        num_layers=num_layers,
        bidirectional=bidirectional,
        dropout=dropout,
        subsampling=subsampling,
    )
    return CTCModel(CTCModelConfig(input_dim=input_dim, vocab_size=vocab_size, encoder=enc, ctc_upsample=ctc_upsample))


def bilstm_ctc_small() -> CTCModel:
    """A small preset (about 1.9 M parameters) that trains on a 2-core CPU in minutes."""
    return bilstm_ctc(hidden_size=192, num_layers=3, subsampling=2)
