"""Recurrent sequence encoder: optional conv subsampling, then a (bi)directional RNN/LSTM/GRU.

Padding is handled by running the backward direction on each sequence reversed within its own
length (with packed sequences, or on the padded batch, which is faster on CPU) and by explicit
masking, so a sequence's output does not depend on what it was batched with
(tests/test_models.py checks this).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from pipeline.errors import shown

Cell = Literal["rnn", "lstm", "gru"]
_CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
_STAGES = {1: 0, 2: 1, 4: 2, 8: 3}  # subsampling factor -> stride-2 conv stages


@dataclass(frozen=True)
class EncoderConfig:
    """Hyper-parameters of :class:`RNNEncoder` (values only, YAML-friendly)."""

    cell: Cell = "lstm"
    hidden_size: int = 256
    num_layers: int = 3
    bidirectional: bool = True
    dropout: float = 0.1
    subsampling: int = 1  # 1, 2, 4 or 8: time reduction of the conv front end
    impl: str = "auto"  # auto | padded | packed: how the RNN steps over padding (same outputs)
    layer_norm: bool = False  # LayerNorm on each layer's output (before dropout and the next layer)

    def __post_init__(self) -> None:
        # Bounds, checked before anything is allocated: a bundle's config is untrusted data.
        check_range("encoder.hidden_size", self.hidden_size, 1, MAX_HIDDEN)
        check_range("encoder.num_layers", self.num_layers, 1, MAX_LAYERS)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"encoder.dropout must be in [0, 1), got {self.dropout}")
        if self.subsampling not in _STAGES:
            raise ValueError(f"encoder.subsampling must be one of {sorted(_STAGES)}, got {self.subsampling}")
        if self.cell not in _CELLS or self.impl not in ("auto", "padded", "packed"):
            raise ValueError(f"encoder.cell {self.cell!r} / impl {self.impl!r} unknown")


#: Largest sizes a model config may ask for (far above any seqrec model; a bundle asking for
#: more is refused before anything is built).
MAX_HIDDEN = 4096
MAX_LAYERS = 16
MAX_DIM = 16384


def check_range(name: str, value: int, low: int, high: int) -> None:
    """Raises ValueError unless ``value`` is an int in [low, high]."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {shown(value)}")


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
        if factor not in _STAGES or factor == 1:
            raise ValueError(f"subsampling factor must be 1, 2, 4 or 8, got {factor}")
        stages = []
        dim = input_dim
        for _ in range(_STAGES[factor]):
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

    Each layer holds one single-layer unidirectional RNN per direction. The backward direction
    runs on each sequence reversed *within its own length*, so padding never reaches a valid
    frame, whichever way the RNN is run:

    * ``impl="padded"`` runs the RNN on the padded batch directly. On CPU this takes oneDNN's
      fused LSTM kernels, which are about twice as fast as packed sequences (and allow bf16).
    * ``impl="packed"`` packs each direction's input with ``pack_padded_sequence``, so no
      padded step is computed (cuDNN's strength).
    * ``impl="auto"`` (default) picks ``packed`` on CUDA and ``padded`` elsewhere.

    Both give the same outputs (tests/test_models.py checks it, and that a sequence's output
    does not depend on what it was batched with).

    Args:
        input_dim: Feature dimension D of the input.
        cfg: Cell type, hidden size, layers, direction, dropout and subsampling.
    """

    def __init__(self, input_dim: int, cfg: EncoderConfig) -> None:
        super().__init__()
        if cfg.cell not in _CELLS:
            raise ValueError(f"cell must be one of {sorted(_CELLS)}, got {cfg.cell!r}")
        if cfg.impl not in ("auto", "padded", "packed"):
            raise ValueError(f"impl must be auto, padded or packed, got {cfg.impl!r}")
        self.cfg = cfg
        self.subsample = (
            ConvSubsampling(input_dim, cfg.hidden_size, cfg.subsampling)
            if cfg.subsampling != 1
            else None
        )
        directions = 2 if cfg.bidirectional else 1
        dim = cfg.hidden_size if self.subsample is not None else input_dim
        self.layers = nn.ModuleList()
        for _ in range(cfg.num_layers):
            self.layers.append(
                nn.ModuleList(
                    _CELLS[cfg.cell](input_size=dim, hidden_size=cfg.hidden_size, batch_first=True)
                    for _ in range(directions)
                )
            )
            dim = cfg.hidden_size * directions
        if cfg.cell == "lstm":
            self._init_forget_bias(1.0)
        self.dropout = nn.Dropout(cfg.dropout)
        self.norms = (
            nn.ModuleList(nn.LayerNorm(dim) for _ in range(cfg.num_layers)) if cfg.layer_norm else None
        )
        self.output_dim = dim

    @torch.no_grad()
    def _init_forget_bias(self, value: float) -> None:
        """Starts LSTM forget gates open (total bias ``value``), so early gradients flow through time."""
        h = self.cfg.hidden_size
        for directions in self.layers:
            for rnn in directions:
                rnn.bias_ih_l0[h : 2 * h].fill_(value)  # gate order i, f, g, o
                rnn.bias_hh_l0[h : 2 * h].zero_()

    def output_lengths(self, x_lens: torch.Tensor) -> torch.Tensor:
        """Output lengths for input lengths (B,), without running the model."""
        for _ in range(_STAGES[self.cfg.subsampling]):
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
        impl = self.cfg.impl
        if impl == "auto":
            impl = "packed" if x.is_cuda else "padded"
        cpu_lens = x_lens.cpu().clamp(min=1)
        reverse = None
        if self.cfg.bidirectional:
            reverse = flat_time_index(within_length_reversal(x_lens, x.size(1)))  # (B * T,)
        for i, directions in enumerate(self.layers):
            if i > 0:
                x = self.dropout(x)
            outs = [_run_rnn(directions[0], x, cpu_lens, impl)]
            if reverse is not None:
                backward = _run_rnn(directions[1], _take_frames(x, reverse), cpu_lens, impl)
                outs.append(_take_frames(backward, reverse))
            x = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
            if self.norms is not None:
                x = self.norms[i](x)
        x = x * lengths_mask(x_lens, x.size(1)).unsqueeze(-1).to(x.dtype)
        return x, x_lens


def within_length_reversal(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, T) time indices that reverse each sequence's first ``length`` steps.

    Padded steps map to themselves, so applying the reversal twice is the identity.
    """
    steps = torch.arange(max_len, device=lengths.device).unsqueeze(0)  # (1, T)
    last = lengths.unsqueeze(1) - 1  # (B, 1)
    return torch.where(steps <= last, last - steps, steps)


def flat_time_index(index: torch.Tensor) -> torch.Tensor:
    """(B, T) per-sequence time indices -> (B * T,) row indices into x.reshape(B * T, D)."""
    b, t = index.shape
    offsets = torch.arange(b, device=index.device).unsqueeze(1) * t  # (B, 1)
    return (index + offsets).reshape(-1)


def _take_frames(x: torch.Tensor, flat_index: torch.Tensor) -> torch.Tensor:
    """x: (B, T, D), flat_index: (B * T,) from :func:`flat_time_index` -> (B, T, D) with
    out[b, t] = x[b, index[b, t]].

    Copies whole D-wide rows (index_select; its gradient is index_add), which is about twice
    as fast on CPU (forward and backward) as an element-wise gather over an expanded (B, T, D) index.
    """
    b, t, d = x.shape
    return x.reshape(b * t, d).index_select(0, flat_index).reshape(b, t, d)


def _run_rnn(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor, impl: str) -> torch.Tensor:
    """One unidirectional single-layer RNN over right-padded x: (B, T, D) -> (B, T, H).

    Steps beyond a sequence's length are garbage for ``padded`` and zero for ``packed``; the
    caller masks them. Valid steps never see padding, because padding comes after them.
    """
    if impl == "padded":
        return rnn(x)[0]
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, _ = rnn(packed)
    return pad_packed_sequence(out, batch_first=True, total_length=x.size(1))[0]
