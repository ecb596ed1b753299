"""Fitting a frame CNN to a video corpus before embedding it.

The embedded corpus's synthetic frames look nothing like ImageNet, and the recipe must not
depend on weights it cannot download, so the backbone is first trained to recognise each
frame's clip label. Its penultimate features then carry the figure's pose, which is what the
recurrent classifier needs to read the action from frame order.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import nn

from data_prep.frame_embed import BackboneConfig, FrameEmbedder
from pipeline.training.schedule import warmup_cosine

log = logging.getLogger(__name__)


def decode_frames(
    clips: list[tuple[str, int]], backbone: BackboneConfig, frames_per_clip: int, *, train: bool, seed: int, num_workers: int
) -> tuple[np.ndarray, np.ndarray]:
    """Samples frames from each clip: (N * F, S, S, 3) uint8 and their labels (N * F,).

    Clips that fail to decode are logged and skipped.
    """
    from data_prep.video_io import VideoError, load_clip

    def one(item: tuple[int, tuple[str, int]]):
        i, (path, label) = item
        rng = np.random.default_rng([seed, i])
        try:
            frames = load_clip(path, frames_per_clip, size=backbone.frame_size, short_side=backbone.short_side, train=train, rng=rng)
        except VideoError as exc:
            log.warning("skipping %s", exc)
            return None
        return frames, label

    with ThreadPoolExecutor(max(num_workers, 1)) as pool:
        results = [r for r in pool.map(one, enumerate(clips)) if r is not None]
    if not results:
        raise ValueError("no clip could be decoded for backbone fitting")
    frames = np.concatenate([f for f, _ in results])
    labels = np.concatenate([np.full(len(f), y, np.int64) for f, y in results])
    return frames, labels


def fit_backbone(
    model: nn.Module,
    dim: int,
    train: list[tuple[str, int]],
    dev: list[tuple[str, int]],
    *,
    num_classes: int,
    backbone: BackboneConfig,
    cfg: Any,
    num_workers: int = 2,
    num_threads: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """Trains ``model`` (in place) with a linear head on per-frame clip labels.

    Args:
        model: A stripped torchvision backbone mapping (N, 3, S, S) -> (N, dim).
        train, dev: ``(video path, class index)`` pairs.
        cfg: ``BackboneFitConfig`` (epochs, lr, weight_decay, batch_size, frames_per_clip).

    Returns:
        Wall time and per-frame dev accuracy after each epoch.
    """
    if num_threads > 0:
        torch.set_num_threads(num_threads)
    t0 = time.perf_counter()
    x_train, y_train = decode_frames(train, backbone, cfg.frames_per_clip, train=True, seed=seed, num_workers=num_workers)
    x_dev, y_dev = decode_frames(dev, backbone, cfg.frames_per_clip, train=False, seed=seed, num_workers=num_workers)
    decode_s = time.perf_counter() - t0
    log.info("backbone fit: %d train frames, %d dev frames (decoded in %.1f s)", len(x_train), len(x_dev), decode_s)
    torch.manual_seed(seed)
    embedder = FrameEmbedder(model, dim)
    head = nn.Linear(dim, num_classes)
    params = list(embedder.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = -(-len(x_train) // cfg.batch_size)
    sched = warmup_cosine(opt, warmup_steps=min(50, steps_per_epoch), total_steps=cfg.epochs * steps_per_epoch)
    x_train_t, y_train_t = torch.from_numpy(x_train), torch.from_numpy(y_train)
    rng = np.random.default_rng(seed)
    history = []
    from tqdm.auto import tqdm

    for epoch in range(cfg.epochs):
        embedder.train()
        head.train()
        order = torch.from_numpy(rng.permutation(len(x_train)))
        total = 0.0
        for start in tqdm(range(0, len(order), cfg.batch_size), desc=f"backbone epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=None):
            idx = order[start : start + cfg.batch_size]
            loss = nn.functional.cross_entropy(head(embedder(x_train_t[idx])), y_train_t[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        feats = torch.from_numpy(embedder.embed(x_dev))
        with torch.inference_mode():
            acc = float((head(feats).argmax(-1).numpy() == y_dev).mean())
        history.append({"epoch": epoch + 1, "train_loss": total / len(order), "dev_frame_accuracy": acc})
        log.info("backbone epoch %d: loss %.4f, dev frame accuracy %.2f%%", epoch + 1, total / len(order), 100 * acc)
    model.eval()
    return {"fit_seconds": round(time.perf_counter() - t0, 1), "decode_seconds": round(decode_s, 1), "fit_history": history}
