"""The top blocks of a pretrained Whisper encoder, trained with the model that reads them.

A frozen upstream gives every model the same frames. Fine-tuning its upper blocks lets the
representation move towards characters while the lower blocks (and the feature store) stay
fixed: the store holds hidden state ``L - n`` of an ``L``-block encoder (the input of block
``L - n``), and this module runs blocks ``L - n .. L - 1`` and the encoder's final LayerNorm
on it, starting from the pretrained weights (:meth:`UpstreamTop.load_pretrained`).

Whisper attends within windows of at most 30 s (1500 frames), and the upstream computes its
hidden states per window of that size (``WhisperUpstream.chunk_bounds``). This module splits
longer inputs into the same number of near-equal windows, so that no attention ever spans more
than 30 s. Utterances of up to 30 s (all of training) are one window.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from data_prep.whisper_upstream import WhisperBlock, WhisperEncoder
from pipeline.models.encoder import lengths_mask

#: Frames of one attention window: Whisper's 30 s at 50 Hz.
WINDOW_FRAMES = 1500


class UpstreamTop(nn.Module):
    """``num_blocks`` pre-LayerNorm transformer blocks and a final LayerNorm.

    ``forward(x (B, T, dim), x_lens (B,)) -> (B, T, dim)``; padded frames never reach a valid
    one (keys are masked), so a sequence's output does not depend on its batch.
    """

    def __init__(self, dim: int, num_blocks: int, heads: int | None = None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(WhisperBlock(dim, heads or dim // 64) for _ in range(num_blocks))
        self.norm = nn.LayerNorm(dim)

    def load_pretrained(self, encoder: WhisperEncoder) -> None:
        """Copies the top ``len(self.blocks)`` blocks and the final LayerNorm of ``encoder``.

        Raises:
            ValueError: the encoder has fewer blocks or another width.
        """
        n, total = len(self.blocks), len(encoder.blocks)
        if n > total or encoder.norm.normalized_shape != self.norm.normalized_shape:
            raise ValueError(
                f"cannot take {n} blocks of width {self.norm.normalized_shape[0]} from an encoder "
                f"of {total} blocks of width {encoder.norm.normalized_shape[0]}"
            )
        for mine, theirs in zip(self.blocks, encoder.blocks[total - n :], strict=True):
            mine.load_state_dict(theirs.state_dict())
        self.norm.load_state_dict(encoder.norm.state_dict())

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        valid = lengths_mask(x_lens, t)
        if t <= WINDOW_FRAMES:
            return self._run(x, valid)
        step = math.ceil(t / math.ceil(t / WINDOW_FRAMES))
        parts = [self._run(x[:, s : s + step], valid[:, s : s + step]) for s in range(0, t, step)]
        return torch.cat(parts, dim=1)

    def _run(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        # A row with no valid key at all (a window past a short sequence's end) would give NaN
        # attention; let it attend everywhere: its frames are padding anyway.
        valid = valid | ~valid.any(dim=1, keepdim=True)
        for block in self.blocks:
            x = block(x, valid)
        return self.norm(x)
