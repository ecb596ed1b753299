"""Order-agnostic baseline: the mean of frame embeddings, then a linear layer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pipeline.models.encoder import lengths_mask
from pipeline.models.normalize import GlobalCMVN


@dataclass(frozen=True)
class MeanPoolConfig:
    """Architecture of :class:`MeanPoolClassifier`."""

    input_dim: int = 512
    num_classes: int = 10


class MeanPoolClassifier(nn.Module):
    """Ignores frame order by construction: used as the ablation of the recurrent encoder."""

    def __init__(self, cfg: MeanPoolConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.cmvn = GlobalCMVN(cfg.input_dim)
        self.proj = nn.Linear(cfg.input_dim, cfg.num_classes)

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D), x_lens: (B,) -> logits (B, C)."""
        m = lengths_mask(x_lens, x.size(1)).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        pooled = (self.cmvn(x) * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.proj(pooled)
