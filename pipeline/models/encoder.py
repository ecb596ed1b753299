"""Recurrent sequence encoder: optional conv subsampling, then a (bi)directional RNN/LSTM/GRU.

Padding is handled with packed sequences and explicit masking, so a sequence's output does not
depend on what it was batched with (tests/test_models.py checks this).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

Cell = Literal["rnn", "lstm", "gru"]
_CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@dataclass(frozen=True)
class EncoderConfig:
    """Hyper-parameters of :class:`RNNEncoder` (values only, YAML-friendly)."""

    cell: Cell = "lstm"
    hidden_size: int = 256
    num_layers: int = 3
    bidirectional: bool = True
    dropout: float = 0.1
    subsampling: int = 1  # 1, 2 or 4: time reduction of the conv front end


def lengths_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool mask, True on valid frames."""
    steps = torch.arange(max_len, device=lengths.device)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)  # (1, T) < (B, 1) -> (B, T)


class ConvSubsampling(nn.Module):
    """Reduces the frame rate by ``factor`` with stride-2 1-D convolutions over time.

    Each stage is ``Conv1d(k=3, s=2, p=1) + ReLU``, so ``T' = ceil(T / 2)`` per stage. Padded
    frames are zeroed before each stage, which keeps the output padding-invariant.
    """

    def __init__(self, input_dim: int, output_dim: int, factor: int) -> None:
        super().__init__()
        if factor not in (2, 4):
            raise ValueError(f"subsampling factor must be 1, 2 or 4, got {factor}")
        stages = []
        dim = input_dim
        for _ in range({2: 1, 4: 2}[factor]):
            stages.append(nn.Conv1d(dim, output_dim, kernel_size=3, stride=2, padding=1))
            dim = output_dim
        self.stages = nn.ModuleList(stages)
        self.factor = factor

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, D), x_lens: (B,) -> (B, T', D_out), (B,) with T' = ceil(T / factor)."""
        for conv in self.stages:
            x = x * lengths_mask(x_lens, x.size(1)).unsqueeze(-1).to(x.dtype)
            x = conv(x.transpose(1, 2)).transpose(1, 2)  # (B, T, D) -> (B, D, T) -> (B, T', D')
            x = torch.relu(x)
            x_lens = torch.div(x_lens + 1, 2, rounding_mode="floor")
        return x, x_lens


class RNNEncoder(nn.Module):
    """Conv subsampling (optional) followed by a stacked (bi)directional RNN.

    Args:
        input_dim: Feature dimension D of the input.
        cfg: Cell type, hidden size, layers, direction, dropout and subsampling.
    """

    def __init__(self, input_dim: int, cfg: EncoderConfig) -> None:
        super().__init__()
        if cfg.cell not in _CELLS:
            raise ValueError(f"cell must be one of {sorted(_CELLS)}, got {cfg.cell!r}")
        self.cfg = cfg
        self.subsample = (
            ConvSubsampling(input_dim, cfg.hidden_size, cfg.subsampling)
            if cfg.subsampling != 1
            else None
        )
        rnn_in = cfg.hidden_size if self.subsample is not None else input_dim
        self.rnn = _CELLS[cfg.cell](
            input_size=rnn_in,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            bidirectional=cfg.bidirectional,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.output_dim = cfg.hidden_size * (2 if cfg.bidirectional else 1)

    def output_lengths(self, x_lens: torch.Tensor) -> torch.Tensor:
        """Output lengths for input lengths (B,), without running the model."""
        for _ in range({1: 0, 2: 1, 4: 2}[self.cfg.subsampling]):
            x_lens = torch.div(x_lens + 1, 2, rounding_mode="floor")
        return x_lens

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encodes a padded batch.

        Args:
            x: (B, T, D) padded features.
            x_lens: (B,) valid lengths.

        Returns:
            y: (B, T', H) with H = hidden_size * directions; zero beyond each length.
            y_lens: (B,) output lengths (T' = ceil(T / subsampling)).
        """
        if self.subsample is not None:
            x, x_lens = self.subsample(x, x_lens)
        total = x.size(1)
        packed = pack_padded_sequence(x, x_lens.cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        y, _ = pad_packed_sequence(out, batch_first=True, total_length=total)  # (B, T', H)
        return y, x_lens
