"""Output heads on top of an encoder's (B, T', H) sequence."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from pipeline.models.encoder import lengths_mask

Pooling = Literal["last", "mean", "attention"]


class CTCHead(nn.Module):
    """Linear projection to the vocabulary and log-softmax; blank is id 0.

    With ``upsample`` = k > 1 each encoder frame emits k output frames (one projection to
    k * V, split along time). A x4-subsampled encoder then runs at 25 frames/s while CTC sees
    50, which leaves room for fast speech (CTC needs at least one frame per character, plus
    one between repeated characters) at the cost of a wider last layer only.
    """

    def __init__(self, hidden_dim: int, vocab_size: int, upsample: int = 1) -> None:
        super().__init__()
        if upsample < 1:
            raise ValueError(f"upsample must be >= 1, got {upsample}")
        self.upsample = upsample
        self.vocab_size = vocab_size
        self.proj = nn.Linear(hidden_dim, vocab_size * upsample)

    def forward(self, y: torch.Tensor, y_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y: (B, T', H), y_lens: (B,) -> log-probs (B, T' * k, V) in float32, lengths (B,) * k."""
        logits = self.proj(y).float()  # (B, T', k * V)
        if self.upsample > 1:
            b, t, _ = logits.shape
            logits = logits.view(b, t * self.upsample, self.vocab_size)  # (B, T', k*V) -> (B, T'*k, V)
        return torch.log_softmax(logits, dim=-1), y_lens * self.upsample


class SequencePooling(nn.Module):
    """Pools (B, T', H) to (B, H) over valid frames.

    ``last`` takes the forward direction's state at the last valid frame and, for a
    bidirectional encoder, the backward direction's state at the first frame (each direction's
    summary of the whole clip). ``mean`` averages valid frames. ``attention`` is a learned
    softmax-weighted average over valid frames.
    """

    def __init__(self, hidden_dim: int, mode: Pooling, *, bidirectional: bool) -> None:
        super().__init__()
        if mode not in ("last", "mean", "attention"):
            raise ValueError(f"pooling must be last, mean or attention, got {mode!r}")
        self.mode = mode
        self.bidirectional = bidirectional
        self.score = nn.Linear(hidden_dim, 1) if mode == "attention" else None

    def forward(self, y: torch.Tensor, y_lens: torch.Tensor) -> torch.Tensor:
        """y: (B, T', H), y_lens: (B,) -> (B, H)."""
        mask = lengths_mask(y_lens, y.size(1))  # (B, T')
        if self.mode == "mean":
            m = mask.unsqueeze(-1).to(y.dtype)
            return (y * m).sum(1) / m.sum(1).clamp(min=1.0)
        if self.mode == "attention":
            scores = self.score(y).squeeze(-1).masked_fill(~mask, float("-inf"))  # (B, T')
            weights = torch.softmax(scores.float(), dim=1).to(y.dtype)
            return torch.bmm(weights.unsqueeze(1), y).squeeze(1)  # (B, 1, T') @ (B, T', H)
        last = (y_lens - 1).clamp(min=0)
        batch = torch.arange(y.size(0), device=y.device)
        final = y[batch, last]  # (B, H) at each sequence's last valid frame
        if not self.bidirectional:
            return final
        half = y.size(-1) // 2
        return torch.cat([final[:, :half], y[:, 0, half:]], dim=-1)


class ClassificationHead(nn.Module):
    """Pooling followed by dropout and a linear classifier: (B, T', H) -> (B, C) logits."""

    def __init__(
        self, hidden_dim: int, num_classes: int, *, pooling: Pooling, bidirectional: bool, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.pool = SequencePooling(hidden_dim, pooling, bidirectional=bidirectional)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(hidden_dim, num_classes)

    def forward(self, y: torch.Tensor, y_lens: torch.Tensor) -> torch.Tensor:
        """y: (B, T', H), y_lens: (B,) -> logits (B, C)."""
        return self.proj(self.dropout(self.pool(y, y_lens)))
