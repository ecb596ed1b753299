"""Greedy (best path) CTC decoding.

:func:`greedy_path` is the rule, on one utterance's numpy log-probs (the torch-free lite engine
calls it directly); :func:`greedy_decode` applies it to a padded torch batch. Importing this
module does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pipeline.decoding.types import CTCHypothesis

if TYPE_CHECKING:
    from torch import Tensor


def collapse_best_path(ids: np.ndarray, best: np.ndarray, blank: int = 0) -> CTCHypothesis:
    """Applies the CTC collapse rule to one utterance's per-frame argmax.

    A frame emits its token where it differs from the previous frame's and is not the blank
    (a blank in between makes a repeated label count twice, exactly as CTC collapses paths).

    Args:
        ids: (T,) argmax token id of each valid frame.
        best: (T,) the log-probability of that token.
        blank: The blank id.

    Returns:
        The hypothesis; ``score`` is the log-probability of the best path.
    """
    ids = np.asarray(ids)
    if ids.size == 0:
        return CTCHypothesis()
    prev = np.concatenate([[-1], ids[:-1]])
    frames = np.flatnonzero((ids != blank) & (ids != prev))
    return CTCHypothesis(
        token_ids=ids[frames].tolist(), frames=frames.tolist(), score=float(np.sum(best))
    )


def greedy_path(log_probs: np.ndarray, blank: int = 0) -> CTCHypothesis:
    """Greedy CTC over one utterance's (T, V) numpy log-probabilities (all frames valid)."""
    log_probs = np.asarray(log_probs)
    if log_probs.ndim != 2:
        raise ValueError(f"log_probs must be (T, V), got shape {log_probs.shape}")
    if log_probs.shape[0] == 0:
        return CTCHypothesis()
    ids = log_probs.argmax(axis=-1)  # (T,)
    return collapse_best_path(ids, log_probs[np.arange(ids.size), ids], blank)


def check_batch(log_probs: Tensor, lengths: Tensor | None) -> Tensor:
    """Validates a batch of CTC outputs and returns the lengths as a CPU int64 tensor.

    Args:
        log_probs: (B, T, V) log-probabilities.
        lengths: (B,) valid frames per sequence, or None for all T frames.

    Raises:
        ValueError: wrong ranks, a batch-size mismatch, or a length outside [0, T].
    """
    # lazy: torch only for tensor input; the torch-free engine decodes through this module
    import torch

    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, V), got shape {tuple(log_probs.shape)}")
    batch, num_frames, _ = log_probs.shape
    if lengths is None:
        return torch.full((batch,), num_frames, dtype=torch.long)
    lengths = torch.as_tensor(lengths).detach().to("cpu", torch.long)
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
    if batch and (int(lengths.min()) < 0 or int(lengths.max()) > num_frames):
        raise ValueError(f"lengths must lie in [0, {num_frames}], got {lengths.tolist()}")
    return lengths


def greedy_decode(
    log_probs: Tensor, lengths: Tensor | None = None, blank: int = 0
) -> list[CTCHypothesis]:
    """Takes the most probable token per frame, then merges repeats and drops blanks.

    Args:
        log_probs: (B, T, V) log-probabilities (any device and float dtype).
        lengths: (B,) valid frames per sequence; frames at or beyond a length are ignored.
            None means all T frames are valid.
        blank: The blank id.

    Returns:
        One hypothesis per sequence (:func:`collapse_best_path`); ``score`` is the
        log-probability of the best path.
    """
    # lazy: torch only for tensor input; the torch-free engine decodes through this module
    import torch

    lengths = check_batch(log_probs, lengths)
    if log_probs.shape[1] == 0:
        return [CTCHypothesis() for _ in range(log_probs.shape[0])]
    with torch.no_grad():
        best, ids = log_probs.detach().float().max(dim=-1)  # (B, T) each, on the model's device
    best, ids = best.cpu().numpy(), ids.cpu().numpy()
    return [
        collapse_best_path(ids[b, :n], best[b, :n], blank) for b, n in enumerate(lengths.tolist())
    ]
