"""Datasets over feature stores and the collate functions that pad them into (B, T, D) batches."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

log = logging.getLogger(__name__)


class ArrayStore(Protocol):
    """What a dataset needs of a feature store (``data_prep.store.FeatureStore``)."""

    ids: list[str]

    def __getitem__(self, i: int) -> np.ndarray: ...


class FeatureDataset(Dataset):
    """Items ``(features (T, D) float32, target)`` drawn from feature stores.

    Args:
        entries: ``(store, index, target)`` triples; ``store[index]`` is a (T, D) array.
        lengths: The frame count of each entry (for length bucketing).
    """

    def __init__(self, entries: Sequence[tuple[ArrayStore, int, Any]], lengths: Sequence[int]) -> None:
        self.entries = list(entries)
        self.lengths = [int(n) for n in lengths]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any]:
        store, index, target = self.entries[i]
        feats = torch.from_numpy(np.asarray(store[index], dtype=np.float32))
        return feats, target


def pad_features(feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """List of (T_i, D) -> padded (B, T_max, D) float32 and lengths (B,) int64; zero padding."""
    lengths = torch.tensor([f.size(0) for f in feats], dtype=torch.long)
    x = torch.nn.utils.rnn.pad_sequence(list(feats), batch_first=True)  # (B, T_max, D)
    return x, lengths


def collate_ctc(items: Sequence[tuple[torch.Tensor, Sequence[int]]]) -> dict[str, torch.Tensor]:
    """Batches ``(features, token ids)`` items for CTC.

    Returns:
        ``x`` (B, T, D), ``x_lens`` (B,), ``targets`` (B, S) padded with 0, ``target_lens`` (B,).
    """
    x, x_lens = pad_features([f for f, _ in items])
    target_lens = torch.tensor([len(t) for _, t in items], dtype=torch.long)
    targets = torch.zeros(len(items), int(target_lens.max()) if len(items) else 0, dtype=torch.long)
    for i, (_, t) in enumerate(items):
        targets[i, : len(t)] = torch.as_tensor(list(t), dtype=torch.long)
    return {"x": x, "x_lens": x_lens, "targets": targets, "target_lens": target_lens}


def collate_labels(items: Sequence[tuple[torch.Tensor, int]]) -> dict[str, torch.Tensor]:
    """Batches ``(features, class index)`` items: ``x`` (B, T, D), ``x_lens`` (B,), ``labels`` (B,)."""
    x, x_lens = pad_features([f for f, _ in items])
    labels = torch.tensor([int(y) for _, y in items], dtype=torch.long)
    return {"x": x, "x_lens": x_lens, "labels": labels}


def length_sorted_batches(lengths: Sequence[int], max_frames: int, max_batch: int = 64) -> list[list[int]]:
    """Deterministic evaluation batches: items sorted by length, bounded by a frame budget."""
    # lazy: importing pipeline.training runs its package (the whole trainer)
    from pipeline.training.sampler import BucketBatchSampler

    sampler = BucketBatchSampler(lengths, max_frames=max_frames, max_batch_size=max_batch, shuffle=False)
    return list(sampler)


def build_entries(
    store: ArrayStore, lengths: Sequence[int], target_of: Callable[[str], Any | None]
) -> tuple[list[tuple[ArrayStore, int, Any]], list[int]]:
    """Pairs every store entry with its target; entries whose target is None are dropped."""
    entries, kept_lengths = [], []
    dropped = 0
    for i, item_id in enumerate(store.ids):
        target = target_of(item_id)
        if target is None:
            dropped += 1
            continue
        entries.append((store, i, target))
        kept_lengths.append(int(lengths[i]))
    if dropped:
        log.warning("dropped %d store entries without a usable target", dropped)
    return entries, kept_lengths
