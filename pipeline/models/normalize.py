"""Global mean/variance normalisation carried inside the model, so bundles are self-contained."""

from __future__ import annotations

import torch
from torch import nn


class GlobalCMVN(nn.Module):
    """Normalises features with fixed per-dimension statistics.

    The statistics come from the training feature store and are saved with the weights.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def set_stats(self, mean: torch.Tensor, std: torch.Tensor, floor: float = 1e-5) -> None:
        """Sets statistics from (D,) tensors; tiny std values are floored."""
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp(min=floor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D) -> (B, T, D) normalised."""
        return (x - self.mean) / self.std
