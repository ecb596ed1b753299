"""Fitting a frame CNN to a video corpus before embedding it.

The embedded corpus's synthetic frames look nothing like ImageNet, and the recipe must not
depend on weights it cannot download, so the backbone is trained first. Two objectives:

- **pose** (embedded corpus): regress the figure's 2-D joint positions, which the generator
  knows for every frame, from the image. The embeddings then carry pose and position by
  construction, and a clip's background or colours are no help, so they are not memorised.
- **label** (any corpus): classify each frame with its clip's label. This is the fallback for
  real corpora without per-frame annotations.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from data_prep.frame_embed import BackboneConfig, FrameEmbedder
from pipeline.amp import autocast, resolve_precision
from pipeline.training.checkpoint import load_checkpoint, save_checkpoint
from pipeline.training.frame_augment import FrameAugment, PoseLayout, augment_frames
from pipeline.training.schedule import adamw, warmup_cosine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneFitConfig:
    """Fitting the CNN to the corpus's frames (:func:`fit_backbone`): pose regression where the
    corpus has joint positions (the embedded one), else per-frame clip-label classification."""

    epochs: int = 3  # 0 keeps the backbone's initial weights
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    frames_per_clip: int = 8
    pose_embeddings: bool = True  # pose objective: embed frames as their predicted joints
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # autocast for fitting; see pipeline.amp
    augment: bool = True  # random colour-channel order, and mirroring for pose targets
    photometric: bool = False  # random brightness, contrast, saturation, grey, blur and noise
    geometric: bool = False  # random zoom and shift; pose targets move with the frame
    tune_fraction: float = 1.0  # share of the backbone's layers, from the top, that the fit trains


def pose_standardisation(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std of (N, D) pose targets, the units the pose head predicts in.

    The std has a floor (a tenth of the median std) so that near-constant dimensions, such as
    a hip relative to the pelvis, do not turn into amplified noise.
    """
    mean, std = targets.mean(0), targets.std(0)
    return mean, np.maximum(std, 0.1 * float(np.median(std)) + 1e-6)


def freeze_bottom(backbone: nn.Module, tune_fraction: float) -> list[nn.Module]:
    """Freezes all but the top ``tune_fraction`` of a backbone's parameter tensors.

    Tensors count in registration order, which runs from input to output in every backbone
    seqrec builds, so a fraction below 1 keeps the low, generic layers of pretrained weights
    and tunes the high ones.

    Returns:
        The modules whose parameters are all frozen: training keeps them in eval mode, so
        their BatchNorm statistics stay the pretrained ones.
    """
    if not 0.0 < tune_fraction <= 1.0:
        raise ValueError(f"backbone_fit.tune_fraction must be in (0, 1], got {tune_fraction}")
    params = list(backbone.parameters())
    keep = math.ceil(tune_fraction * len(params))
    for p in params[: len(params) - keep]:
        p.requires_grad_(False)
    return [
        m for m in backbone.modules()
        if list(m.parameters(recurse=False)) and not any(p.requires_grad for p in m.parameters(recurse=False))
    ]  # fmt: skip


@dataclass(frozen=True)
class FitClip:
    """One training clip: its file, its label index (-1: none, a clip for the pose objective only),
    and optional per-frame targets (T_video, K)."""

    path: str
    label: int
    frame_targets: np.ndarray | None = None


def decode_frames(
    clips: list[FitClip], backbone: BackboneConfig, frames_per_clip: int, *, train: bool, seed: int, num_workers: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Samples frames from each clip (TSN segments).

    Returns:
        frames (N * F, S, S, 3) uint8, labels (N * F,), and per-frame targets (N * F, K) when
        every clip has them (else None). Clips that fail to decode are logged and skipped.
    """
    # lazy: data_prep.video_io pulls in cv2; only frame decoding needs it
    from data_prep.video_io import (
        VideoError,
        read_frames,
        resize_short_side_and_center_crop,
        sample_indices,
    )

    def one(item: tuple[int, FitClip]):
        i, clip = item
        rng = np.random.default_rng([seed, i])
        try:
            video, _ = read_frames(clip.path)
        except VideoError as exc:
            log.warning("skipping %s", exc)
            return None
        idx = sample_indices(len(video), frames_per_clip, train=train, rng=rng)
        frames = np.stack([resize_short_side_and_center_crop(video[j], backbone.short_side, backbone.frame_size) for j in idx])
        targets = None
        if clip.frame_targets is not None:
            targets = clip.frame_targets[np.minimum(idx, len(clip.frame_targets) - 1)]
        return frames, clip.label, targets

    with ThreadPoolExecutor(max(num_workers, 1)) as pool:
        results = [r for r in pool.map(one, enumerate(clips)) if r is not None]
    if not results:
        raise ValueError("no clip could be decoded for backbone fitting")
    frames = np.concatenate([f for f, _, _ in results])
    labels = np.concatenate([np.full(len(f), y, np.int64) for f, y, _ in results])
    targets = None
    if all(t is not None for _, _, t in results):
        targets = np.concatenate([t for _, _, t in results]).astype(np.float32)
    return frames, labels, targets


def fit_backbone(
    model: nn.Module,
    dim: int,
    train: list[FitClip],
    dev: list[FitClip],
    *,
    num_classes: int,
    backbone: BackboneConfig,
    cfg: Any,
    num_workers: int = 2,
    num_threads: int = 0,
    seed: int = 0,
    flip_map: tuple[np.ndarray, np.ndarray] | None = None,
    pose_layout: PoseLayout | None = None,
    checkpoint: Path | None = None,
    identity: str = "",
) -> dict[str, Any]:
    """Trains ``model`` in place: pose regression when clips carry frame targets, else labels.

    With ``cfg.augment``, each training frame gets a random permutation of its colour channels
    (the objectives do not depend on colours, and this keeps the CNN from memorising them) and,
    for pose targets with a ``flip_map`` (``perm``, ``sign``: mirrored targets are
    ``targets[:, perm] * sign``), a random left-right mirror. ``cfg.photometric`` and
    ``cfg.geometric`` add random looks and random zoom/shift (pose targets move with the frame
    as ``pose_layout`` says); see :mod:`pipeline.training.frame_augment`.

    Args:
        model: A stripped torchvision backbone mapping (N, 3, S, S) -> (N, dim).
        train, dev: The clips.
        cfg: ``BackboneFitConfig`` (epochs, lr, weight_decay, batch_size, frames_per_clip).
        checkpoint: Where the state is saved after every epoch (atomically). A fit that finds a
            checkpoint of the same ``identity`` there resumes after its epoch and ends with the
            weights an uninterrupted fit would have; one of another identity is ignored.
        identity: What is fitted on what (the recipe passes its stage hash).

    Returns:
        ``embedder``: the fitted :class:`FrameEmbedder` (with the pose head as its projection
        when ``cfg.pose_embeddings``), the objective, wall times, and the dev score after each
        epoch (pose: R^2 of the joint positions; label: per-frame accuracy).
    """
    if num_threads > 0:
        torch.set_num_threads(num_threads)
    t0 = time.perf_counter()
    x_train, y_train, p_train = decode_frames(train, backbone, cfg.frames_per_clip, train=True, seed=seed, num_workers=num_workers)
    x_dev, y_dev, p_dev = decode_frames(dev, backbone, cfg.frames_per_clip, train=False, seed=seed, num_workers=num_workers)
    decode_s = time.perf_counter() - t0
    pose = p_train is not None and p_dev is not None
    log.info(
        "backbone fit (%s): %d train frames, %d dev frames (decoded in %.1f s)",
        "pose" if pose else "label", len(x_train), len(x_dev), decode_s,
    )
    torch.manual_seed(seed)
    embedder = FrameEmbedder(model, dim)
    if pose:
        mean, std = pose_standardisation(p_train)
        target_train = torch.from_numpy(((p_train - mean) / std).astype(np.float32))
        target_dev = (p_dev - mean) / std
        head: nn.Module = nn.Linear(dim, target_train.size(1))
        loss_fn: Callable = nn.functional.mse_loss
    else:
        target_train = torch.from_numpy(y_train)
        head = nn.Linear(dim, num_classes)
        loss_fn = nn.functional.cross_entropy
    device = next(embedder.parameters()).device
    head = head.to(device)
    amp = resolve_precision(getattr(cfg, "precision", "auto"), device)  # bf16 where it is fast
    frozen = freeze_bottom(embedder.backbone, getattr(cfg, "tune_fraction", 1.0))
    params = [p for p in (*embedder.parameters(), *head.parameters()) if p.requires_grad]
    opt = adamw(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = -(-len(x_train) // cfg.batch_size)
    sched = warmup_cosine(opt, warmup_steps=min(50, steps_per_epoch), total_steps=cfg.epochs * steps_per_epoch)
    x_train_t = torch.from_numpy(x_train)
    target_flipped = None
    if pose and flip_map is not None:
        perm, sign = flip_map
        target_flipped = torch.from_numpy(((p_train[:, perm] * sign - mean) / std).astype(np.float32))
    gen = torch.Generator().manual_seed(seed)
    aug = FrameAugment(
        channels=getattr(cfg, "augment", False), mirror=getattr(cfg, "augment", False),
        photometric=getattr(cfg, "photometric", False), geometric=getattr(cfg, "geometric", False),
    )
    stats = (torch.from_numpy(mean.astype(np.float32)), torch.from_numpy(std.astype(np.float32))) if pose else (None, None)
    rng = np.random.default_rng(seed)
    history: list[dict[str, Any]] = []

    def state() -> dict[str, Any]:
        return {
            "identity": identity, "epoch": len(history), "history": history,
            "embedder": embedder.state_dict(), "head": head.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "torch_rng": gen.get_state(), "global_rng": torch.get_rng_state(),
            "numpy_rng": json.dumps(rng.bit_generator.state),  # 128-bit ints: kept as text
        }  # fmt: skip

    first = 0
    if checkpoint is not None and Path(checkpoint).is_file():
        saved = load_checkpoint(checkpoint)
        if saved.get("identity") == identity and 0 < int(saved["epoch"]) <= cfg.epochs:
            embedder.load_state_dict(saved["embedder"])
            head.load_state_dict(saved["head"])
            opt.load_state_dict(saved["optimizer"])
            sched.load_state_dict(saved["scheduler"])
            gen.set_state(saved["torch_rng"])
            torch.set_rng_state(saved["global_rng"])  # stochastic layers of the backbone
            rng.bit_generator.state = json.loads(saved["numpy_rng"])
            history, first = list(saved["history"]), int(saved["epoch"])
            log.info("backbone fit: resumed after epoch %d from %s", first, checkpoint)
        else:
            log.info("backbone fit: %s belongs to another fit; starting over", checkpoint)

    for epoch in range(first, cfg.epochs):
        embedder.train()
        head.train()
        for m in frozen:
            m.eval()
        order = torch.from_numpy(rng.permutation(len(x_train)))
        total = 0.0
        batches = range(0, len(order), cfg.batch_size)
        for start in tqdm(batches, desc=f"backbone epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=None):
            idx = order[start : start + cfg.batch_size]
            frames, target = x_train_t[idx], target_train[idx]
            if aug.channels or aug.photometric or aug.geometric:
                frames, target = augment_frames(
                    frames, target, gen, aug, flipped=target_flipped[idx] if target_flipped is not None else None,
                    layout=pose_layout if pose else None, mean=stats[0], std=stats[1],
                )
            with autocast(device, amp):
                out = head(embedder(frames.to(device)))
            loss = loss_fn(out.float(), target.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        feats = torch.from_numpy(embedder.embed(x_dev)).to(device)
        with torch.inference_mode():
            out = head(feats).float().cpu().numpy()
        if pose:
            score = float(1.0 - ((out - target_dev) ** 2).mean() / target_dev.var(0).mean())
            name = "dev_pose_r2"
        else:
            score = float((out.argmax(-1) == y_dev).mean())
            name = "dev_frame_accuracy"
        history.append({"epoch": epoch + 1, "train_loss": total / len(order), name: score})
        log.info("backbone epoch %d: loss %.4f, %s %.3f", epoch + 1, total / len(order), name, score)
        if checkpoint is not None:
            save_checkpoint(checkpoint, state())
    if pose and getattr(cfg, "pose_embeddings", False):
        embedder.projection = head  # frames are then described by their predicted pose
        embedder.dim = head.out_features
    embedder.eval()
    return {
        "embedder": embedder,
        "objective": "pose" if pose else "label",
        "fit_seconds": round(time.perf_counter() - t0, 1),
        "decode_seconds": round(decode_s, 1),
        "fit_history": history,
    }

