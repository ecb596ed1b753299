"""Random changes of look for the frames a backbone is fitted on, with their targets kept true.

The embedded corpus teaches a CNN where a figure's joints are. What must not matter to that
answer (colours, brightness, contrast, sharpness, noise, where the figure stands and how large
it is) is varied here at random, so the CNN cannot lean on one renderer's habits:

- ``channels``: a random order of the colour channels;
- ``mirror``: a left-right flip, when the targets have a mirrored version (``flipped``);
- ``photometric``: brightness, contrast and saturation, sometimes grey, sometimes blurred,
  sometimes noisy;
- ``geometric``: a random zoom (0.8-1.25x) and shift (up to 15 % of the frame). Targets that
  are positions in the frame move with it (see :class:`PoseLayout`).

Everything runs on whole batches in torch, drawn from one ``torch.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PoseLayout:
    """Which target values move with the frame under a zoom and shift.

    Attributes:
        positions: The first ``positions`` values are (x, y) pairs in [-1, 1] frame
            coordinates (x to the right, y down).
        sizes: Indices of values that are lengths relative to the frame side (they scale).
    """

    positions: int
    sizes: tuple[int, ...] = ()


@dataclass(frozen=True)
class FrameAugment:
    """Which augmentations are on (see the module docstring)."""

    channels: bool = True
    mirror: bool = True
    photometric: bool = False
    geometric: bool = False


def _photometric(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """x: (N, S, S, 3) float in [0, 255] -> the same, with a random look per frame."""
    n = x.size(0)

    def u(lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(n, generator=gen)).view(n, 1, 1, 1)

    grey = x.mean(dim=3, keepdim=True)
    x = grey + (x - grey) * u(0.3, 1.6)  # saturation
    mono = (torch.rand(n, generator=gen) < 0.15).view(n, 1, 1, 1)
    x = torch.where(mono, x.mean(dim=3, keepdim=True).expand_as(x), x)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + (x - mean) * u(0.6, 1.4)  # contrast
    x = x * u(0.65, 1.35)  # brightness
    blur = torch.rand(n, generator=gen) < 0.3
    if bool(blur.any()):
        kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
        img = x[blur].permute(0, 3, 1, 2)  # (B, 3, S, S)
        c = img.size(1)
        img = F.conv2d(F.pad(img, (2, 2, 0, 0), mode="replicate"), kernel.view(1, 1, 1, 5).repeat(c, 1, 1, 1), groups=c)
        img = F.conv2d(F.pad(img, (0, 0, 2, 2), mode="replicate"), kernel.view(1, 1, 5, 1).repeat(c, 1, 1, 1), groups=c)
        x[blur] = img.permute(0, 2, 3, 1)
    noisy = (torch.rand(n, generator=gen) < 0.3).view(n, 1, 1, 1)
    x = x + noisy * torch.randn(x.shape, generator=gen) * u(2.0, 12.0)
    return x.clamp(0.0, 255.0)


def _geometric(
    x: torch.Tensor, target: torch.Tensor, gen: torch.Generator, layout: PoseLayout | None,
    mean: torch.Tensor | None, std: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zoom by s and shift by (tx, ty) (in [-1, 1] units): a point at p moves to s * p + t."""
    n, size = x.size(0), x.size(1)
    s = 0.8 + 0.45 * torch.rand(n, generator=gen)
    t = (torch.rand(n, 2, generator=gen) * 2 - 1) * 0.3
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / s  # output point u samples the input at (u - t) / s
    theta[:, :, 2] = -t / s[:, None]
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    x = F.grid_sample(x.permute(0, 3, 1, 2), grid, mode="bilinear", padding_mode="border", align_corners=False)
    x = x.permute(0, 2, 3, 1)
    if layout is not None:
        raw = target * std + mean if mean is not None else target.clone()
        p = layout.positions
        xy = raw[:, :p].view(n, -1, 2)
        raw[:, :p] = (xy * s.view(n, 1, 1) + t.view(n, 1, 2)).reshape(n, p)
        for i in layout.sizes:
            raw[:, i] = raw[:, i] * s
        target = (raw - mean) / std if mean is not None else raw
    return x, target


def augment_frames(
    frames: torch.Tensor,
    target: torch.Tensor,
    gen: torch.Generator,
    aug: FrameAugment,
    *,
    flipped: torch.Tensor | None = None,
    layout: PoseLayout | None = None,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augments a batch of frames and keeps its targets true.

    Args:
        frames: (N, S, S, 3) uint8 or float frames.
        target: (N, K) float pose targets (standardised with ``mean``/``std`` if given) or
            (N,) class labels.
        gen: Random source.
        aug: Which augmentations to apply.
        flipped: (N, K) the targets of the mirrored frames (mirroring needs them).
        layout: Which target values are frame positions and sizes (geometric changes move
            them); None for labels, which a zoom or shift leaves alone.
        mean, std: (K,) the standardisation of ``target``.

    Returns:
        frames (N, S, S, 3) float in [0, 255] and targets of the input's shape.
    """
    n = frames.size(0)
    x = frames.float()
    if aug.channels:
        perms = torch.argsort(torch.rand(n, 3, generator=gen), dim=1)  # (N, 3) channel orders
        x = torch.gather(x, 3, perms.view(n, 1, 1, 3).expand_as(x))
    if aug.mirror and flipped is not None:
        flip = torch.rand(n, generator=gen) < 0.5
        x = torch.where(flip.view(n, 1, 1, 1), x.flip(2), x)  # mirror the width axis
        target = torch.where(flip.view(n, 1), flipped, target)
    if aug.photometric:
        x = _photometric(x, gen)
    if aug.geometric:
        x, target = _geometric(x, target, gen, layout, mean, std)
    return x, target
