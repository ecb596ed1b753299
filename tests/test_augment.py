"""SpecAugment masks and the VTLP-style frequency warp."""

import torch

from pipeline.training.augment import SpecAugmentConfig, frequency_warp, spec_augment


def test_frequency_warp_identity_edges_and_padding():
    torch.manual_seed(0)
    x = torch.randn(4, 6, 20)
    x[1, 4:] = 0.0  # padding
    torch.testing.assert_close(frequency_warp(x, 0.0), x)
    y = frequency_warp(x, 0.15)
    assert y.shape == x.shape
    torch.testing.assert_close(y[..., 0], x[..., 0])  # bin 0 and the top bin stay put
    torch.testing.assert_close(y[..., -1], x[..., -1])
    assert torch.count_nonzero(y[1, 4:]) == 0
    assert not torch.allclose(y, x)


def test_frequency_warp_moves_a_peak_by_the_warp_factor():
    torch.manual_seed(1)
    x = torch.zeros(64, 1, 80)
    x[..., 40] = 1.0  # a formant at bin 40
    peaks = frequency_warp(x, 0.1).argmax(-1).flatten().float()
    # output bin j reads input bin j * a, so the peak lands near 40 / a, a in [0.9, 1.1]
    assert peaks.min() >= 36 and peaks.max() <= 45
    assert peaks.std() > 1.0  # factors really vary per example


def test_spec_augment_masks_and_warps():
    torch.manual_seed(0)
    x = torch.randn(3, 50, 20) + 5.0
    cfg = SpecAugmentConfig(freq_masks=1, freq_width=5, time_masks=1, time_width_ratio=0.1, freq_warp=0.1)
    y = spec_augment(x, cfg)
    assert y.shape == x.shape and (y == 0).any()
    assert torch.equal(spec_augment(x, SpecAugmentConfig(enabled=False)), x)
