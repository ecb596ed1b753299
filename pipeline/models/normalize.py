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


def utterance_mean_norm(x: torch.Tensor, x_lens: torch.Tensor) -> torch.Tensor:
    """Subtracts each sequence's mean over its valid frames (cepstral mean normalisation).

    Removes what is constant over an utterance (channel, much of a speaker's spectral
    colouring). x: (B, T, D), x_lens: (B,) -> (B, T, D), padded frames left at zero.
    """
    mask = (torch.arange(x.size(1), device=x.device).unsqueeze(0) < x_lens.unsqueeze(1)).unsqueeze(-1)
    mask = mask.to(x.dtype)  # (B, T, 1)
    mean = (x * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1.0)  # (B, 1, D)
    return (x - mean) * mask
