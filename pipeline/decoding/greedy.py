"""Greedy (best path) CTC decoding."""

from __future__ import annotations

import torch
from torch import Tensor

from pipeline.decoding.types import CTCHypothesis


def check_batch(log_probs: Tensor, lengths: Tensor | None) -> Tensor:
    """Validates a batch of CTC outputs and returns the lengths as a CPU int64 tensor.

    Args:
        log_probs: (B, T, V) log-probabilities.
        lengths: (B,) valid frames per sequence, or None for all T frames.

    Raises:
        ValueError: wrong ranks, a batch-size mismatch, or a length outside [0, T].
    """
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
        One hypothesis per sequence; ``score`` is the log-probability of the best path.
    """
    lengths = check_batch(log_probs, lengths)
    batch, num_frames, _ = log_probs.shape
    if num_frames == 0:
        return [CTCHypothesis() for _ in range(batch)]

    with torch.no_grad():
        best, ids = log_probs.detach().float().max(dim=-1)  # (B, T) each
        best, ids = best.cpu(), ids.cpu()
        valid = torch.arange(num_frames).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
        prev = torch.full_like(ids, -1)
        prev[:, 1:] = ids[:, :-1]
        # A token is emitted where it differs from the previous frame's; a blank in between
        # makes a repeated label count twice, which is exactly the CTC collapse rule.
        keep = (ids != blank) & (ids != prev) & valid
        scores = torch.where(valid, best, torch.zeros_like(best)).sum(dim=1)  # (B,)

    hyps = []
    for b in range(batch):
        frames = keep[b].nonzero(as_tuple=True)[0]
        hyps.append(
            CTCHypothesis(
                token_ids=ids[b, frames].tolist(),
                frames=frames.tolist(),
                score=float(scores[b]),
            )
        )
    return hyps
