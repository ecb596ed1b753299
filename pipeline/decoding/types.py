"""The hypothesis type that every CTC decoder returns."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CTCHypothesis:
    """One decoded label sequence.

    Attributes:
        token_ids: Emitted token ids after CTC collapsing (repeats merged, blanks removed).
        frames: For each emitted token, the encoder frame where it starts
            (same length as ``token_ids``, strictly increasing).
        score: Log score of the hypothesis (greedy: log-probability of the best path;
            beam search: the decoder's score).
    """

    token_ids: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    score: float = 0.0

    def __post_init__(self) -> None:
        if len(self.token_ids) != len(self.frames):
            raise ValueError(
                f"token_ids ({len(self.token_ids)}) and frames ({len(self.frames)}) differ in length"
            )
