"""SpecAugment on padded log-mel batches, through torchaudio's masking functions."""

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
    enabled: bool = True


def spec_augment(x: torch.Tensor, cfg: SpecAugmentConfig) -> torch.Tensor:
    """Masks random frequency bands and time spans of each example independently.

    Args:
        x: (B, T, D) features (already normalised, so the fill value 0 is the mean).

    Returns:
        (B, T, D) masked copy.
    """
    if not cfg.enabled:
        return x
    spec = x.transpose(1, 2).unsqueeze(1)  # (B, T, D) -> (B, 1, D, T), torchaudio's layout
    for _ in range(cfg.freq_masks):
        spec = AF.mask_along_axis_iid(spec, cfg.freq_width, 0.0, axis=2)
    width = max(int(cfg.time_width_ratio * x.size(1)), 1)
    for _ in range(cfg.time_masks):
        spec = AF.mask_along_axis_iid(spec, width, 0.0, axis=3)
    return spec.squeeze(1).transpose(1, 2)  # (B, 1, D, T) -> (B, T, D)
