"""Optimiser and learning-rate schedule: AdamW (fused kernel), linear warmup, cosine decay."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def param_groups(model: torch.nn.Module, lr: float, pretrained_lr_scale: float) -> list[dict]:
    """Optimizer groups: the model's ``pretrained_parameters()`` (if it has any) at
    ``lr * pretrained_lr_scale``, everything else at ``lr``.

    A LambdaLR schedule then multiplies both groups' rates by the same factor.
    """
    pretrained = list(getattr(model, "pretrained_parameters", list)())
    ids = {id(p) for p in pretrained}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [{"params": rest, "lr": lr}] + (
        [{"params": pretrained, "lr": lr * pretrained_lr_scale}] if pretrained else []
    )


def adamw(params: Iterable, **kwargs) -> torch.optim.AdamW:
    """AdamW with torch's fused kernel: one vectorised update over all parameters.

    On CPU the fused step is about 6x faster than the default per-tensor loop (speech model:
    11.6 -> 1.85 ms a step), on CUDA it saves kernel launches. It takes the same arguments
    (``lr``, ``betas``, ``weight_decay``) and works with ``GradScaler``; parameters on a device
    without a fused kernel (e.g. MPS on old torch) fall back to the default implementation.
    ``params`` may be parameters or optimizer groups (see :func:`param_groups`).
    """
    groups = list(params)
    if groups and not isinstance(groups[0], dict):
        groups = [{"params": groups}]
    flat = [p for g in groups for p in g["params"]]
    devices = {p.device.type for p in flat}
    fused = devices <= {"cpu", "cuda"} and all(p.is_floating_point() for p in flat)
    return torch.optim.AdamW(groups, fused=fused or None, **kwargs)


def warmup_cosine(
    optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int, final_ratio: float = 0.05
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR rising linearly for ``warmup_steps``, then cosine-decaying to ``final_ratio``."""

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(total_steps - warmup_steps, 1)
        progress = min((step - warmup_steps) / span, 1.0)
        return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
