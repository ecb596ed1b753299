"""Clip-classification metrics: top-k accuracy, mean class accuracy, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def classification_metrics(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Scores a set of predictions.

    Args:
        scores: (N, C) logits or probabilities.
        labels: (N,) true class indices.
        num_classes: C.

    Returns:
        ``top1``, ``top5`` (top-min(5, C)), ``mean_class_accuracy`` as fractions in [0, 1],
        ``num_clips``, and ``confusion`` (C, C) as nested lists (rows: truth, columns: prediction).
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if n == 0:
        return {"top1": 0.0, "top5": 0.0, "mean_class_accuracy": 0.0, "num_clips": 0,
                "confusion": np.zeros((num_classes, num_classes), int).tolist()}
    k = min(5, num_classes)
    ranked = np.argsort(-scores, axis=1, kind="stable")
    top1 = ranked[:, 0]
    topk_hit = (ranked[:, :k] == labels[:, None]).any(axis=1)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, top1), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    present = confusion.sum(axis=1) > 0
    return {
        "top1": float((top1 == labels).mean()),
        "top5": float(topk_hit.mean()),
        "mean_class_accuracy": float(per_class[present].mean()) if present.any() else 0.0,
        "num_clips": int(n),
        "confusion": confusion.tolist(),
    }


def save_confusion_png(confusion: Sequence[Sequence[int]], class_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Draws a confusion matrix (rows: truth, columns: prediction) to a PNG file."""
    # lazy: matplotlib (about a second) only for the confusion plot
    import matplotlib

    matplotlib.use("Agg")
    # lazy: matplotlib (about a second) only for the confusion plot
    import matplotlib.pyplot as plt

    m = np.asarray(confusion)
    size = max(4.0, 0.55 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=60, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    threshold = m.max() / 2 if m.size else 0
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j]:
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if m[i, j] > threshold else "black")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
