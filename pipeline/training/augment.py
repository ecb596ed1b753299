"""SpecAugment on padded log-mel batches (torchaudio's masking functions), plus a random
frequency warp of each utterance (VTLP-style) that imitates a different vocal tract length."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio.functional as AF


@dataclass(frozen=True)
class SpecAugmentConfig:
    """Frequency and time masks (Park et al., 2019); time masks scale with utterance length."""

    freq_masks: int = 2
    freq_width: int = 15
    time_masks: int = 2
    time_width_ratio: float = 0.05  # max mask width as a fraction of the batch length
    freq_warp: float = 0.0  # warp factor drawn from [1 - w, 1 + w] per utterance; 0 = off
    enabled: bool = True


def frequency_warp(x: torch.Tensor, max_warp: float, boundary: float = 0.8) -> torch.Tensor:
    """Stretches or squeezes each example's feature axis by a random factor (VTLP).

    Feature bin ``j`` of the output reads the input at ``j * a`` (linear interpolation) up to
    ``boundary * D``; above it the map runs linearly to the top bin, so the band edge stays put.
    ``a`` is drawn from [1 - max_warp, 1 + max_warp] per example.

    Args:
        x: (B, T, D) features; padded frames that are zero stay zero.
        max_warp: Largest relative warp, e.g. 0.1.

    Returns:
        (B, T, D) warped copy.
    """
    b, _, d = x.shape
    alpha = 1.0 + (torch.rand(b, 1, device=x.device) * 2.0 - 1.0) * max_warp  # (B, 1)
    j = torch.arange(d, device=x.device, dtype=torch.float32).unsqueeze(0)  # (1, D)
    edge = boundary * (d - 1)
    low = j * alpha
    high = edge * alpha + (j - edge) * (d - 1 - edge * alpha) / (d - 1 - edge)
    src = torch.where(j <= edge, low, high).clamp(0, d - 1)  # (B, D) source positions
    i0 = src.floor().long().clamp(max=d - 2)
    frac = (src - i0).to(x.dtype).unsqueeze(1)  # (B, 1, D)
    idx = i0.unsqueeze(1).expand(-1, x.size(1), -1)  # (B, T, D)
    lo = torch.gather(x, 2, idx)
    hi = torch.gather(x, 2, idx + 1)
    return lo + (hi - lo) * frac


def spec_augment(x: torch.Tensor, cfg: SpecAugmentConfig) -> torch.Tensor:
    """Warps (``freq_warp`` > 0), then masks random frequency bands and time spans of each
    example independently.

    Args:
        x: (B, T, D) features (already normalised, so the fill value 0 is the mean).

    Returns:
        (B, T, D) masked copy.
    """
    if not cfg.enabled:
        return x
    if cfg.freq_warp > 0:
        x = frequency_warp(x, cfg.freq_warp)
    spec = x.transpose(1, 2).unsqueeze(1)  # (B, T, D) -> (B, 1, D, T), torchaudio's layout
    for _ in range(cfg.freq_masks):
        spec = AF.mask_along_axis_iid(spec, cfg.freq_width, 0.0, axis=2)
    width = max(int(cfg.time_width_ratio * x.size(1)), 1)
    for _ in range(cfg.time_masks):
        spec = AF.mask_along_axis_iid(spec, width, 0.0, axis=3)
    return spec.squeeze(1).transpose(1, 2)  # (B, 1, D, T) -> (B, T, D)
