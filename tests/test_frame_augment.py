"""Backbone-fit frame augmentation: the frames change, the targets stay true."""

import numpy as np
import torch

from pipeline.training.frame_augment import FrameAugment, PoseLayout, augment_frames


def test_channels_and_mirror_move_frames_and_targets_together():
    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 255, (64, 8, 8, 3), dtype=torch.uint8)
    target = torch.randn(64, 5)
    flipped_target = -target
    out, t = augment_frames(frames, target, gen, FrameAugment(), flipped=flipped_target)
    assert out.shape == frames.shape and t.shape == target.shape
    for i in range(64):
        mirrored = bool(torch.equal(t[i], flipped_target[i]))
        assert mirrored or torch.equal(t[i], target[i])
        src = (frames[i].flip(1) if mirrored else frames[i]).float()
        # each output channel is one of the source's channels, all three used once
        matches = [[torch.equal(out[i, ..., c], src[..., k]) for k in range(3)] for c in range(3)]
        assert sorted(m.index(True) for m in matches) == [0, 1, 2]
    flips = sum(bool(torch.equal(t[i], flipped_target[i])) for i in range(64))
    assert 16 < flips < 48


def _dot_frames(points: np.ndarray, size: int = 64) -> torch.Tensor:
    """One white 3x3 dot per frame at ``points`` (N, 2) in [-1, 1] coordinates."""
    frames = torch.zeros(len(points), size, size, 3)
    for i, (x, y) in enumerate(points):
        c, r = int((x + 1) / 2 * size), int((y + 1) / 2 * size)
        frames[i, r - 1 : r + 2, c - 1 : c + 2] = 255.0
    return frames


def test_geometric_targets_follow_the_zoomed_and_shifted_frame():
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.5, 0.5, size=(40, 2))
    size_value = rng.uniform(0.2, 0.4, size=40)
    raw = np.concatenate([points, size_value[:, None], np.ones((40, 1))], 1).astype(np.float32)
    mean, std = torch.tensor([0.1, -0.1, 0.3, 1.0]), torch.tensor([0.5, 0.4, 0.1, 2.0])
    target = (torch.from_numpy(raw) - mean) / std
    gen = torch.Generator().manual_seed(3)
    aug = FrameAugment(channels=False, mirror=False, geometric=True)
    out, t = augment_frames(_dot_frames(points), target, gen, aug, layout=PoseLayout(2, (2,)), mean=mean, std=std)
    moved = (t * std + mean).numpy()
    size = out.size(1)
    shifted = 0
    for i in range(40):
        img = out[i, ..., 0]
        r, c = divmod(int(img.argmax()), size)
        found = np.array([(2 * c + 1) / size - 1, (2 * r + 1) / size - 1])
        assert np.abs(found - moved[i, :2]).max() < 3.0 / size  # the dot is where its target says
        zoom = moved[i, 2] / raw[i, 2]
        assert 0.79 < zoom < 1.26
        np.testing.assert_allclose(moved[i, 3], 1.0, atol=1e-5)  # values outside the layout stay
        shifted += np.abs(moved[i, :2] - points[i]).max() > 0.05
    assert shifted > 20  # and the frames really moved


def test_photometric_changes_pixels_but_not_targets():
    gen = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 255, (32, 16, 16, 3), dtype=torch.uint8)
    target = torch.randn(32, 4)
    aug = FrameAugment(channels=False, mirror=False, photometric=True)
    out, t = augment_frames(frames, target, gen, aug)
    assert torch.equal(t, target)
    assert out.min() >= 0 and out.max() <= 255
    changed = [(out[i] - frames[i].float()).abs().mean() > 2.0 for i in range(32)]
    assert sum(changed) > 24
