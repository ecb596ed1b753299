"""Clip classifier: frame embeddings -> RNN encoder -> pooled many-to-one head."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from pipeline.models.encoder import MAX_DIM, EncoderConfig, RNNEncoder, check_range
from pipeline.models.heads import ClassificationHead, Pooling
from pipeline.models.normalize import GlobalCMVN


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture of :class:`SequenceClassifier`."""

    input_dim: int = 512
    num_classes: int = 10
    pooling: Pooling = "attention"
    head_dropout: float = 0.1
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(hidden_size=128, num_layers=1))

    def __post_init__(self) -> None:
        check_range("model.input_dim", self.input_dim, 1, MAX_DIM)
        check_range("model.num_classes", self.num_classes, 2, 100_000)
        if not 0.0 <= self.head_dropout < 1.0:
            raise ValueError(f"model.head_dropout must be in [0, 1), got {self.head_dropout}")


class SequenceClassifier(nn.Module):
    """Many-to-one recogniser over a sequence of frame embeddings."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.cmvn = GlobalCMVN(cfg.input_dim)
        self.encoder = RNNEncoder(cfg.input_dim, cfg.encoder)
        self.head = ClassificationHead(
            self.encoder.output_dim,
            cfg.num_classes,
            pooling=cfg.pooling,
            bidirectional=cfg.encoder.bidirectional,
            dropout=cfg.head_dropout,
        )

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D) frame embeddings, x_lens: (B,) -> logits (B, C)."""
        y, y_lens = self.encoder(self.cmvn(x), x_lens)
        return self.head(y, y_lens)


def bilstm_classifier(
    *,
    input_dim: int = 512,
    num_classes: int = 10,
    pooling: Pooling = "attention",
    head_dropout: float = 0.1,
    **encoder: Any,
) -> SequenceClassifier:
    """Builds a clip classifier from keyword arguments (the same model as
    ``SequenceClassifier(ClassifierConfig(...))``).

    Args:
        input_dim, num_classes, pooling, head_dropout: As in :class:`ClassifierConfig`.
        **encoder: Any :class:`~pipeline.models.encoder.EncoderConfig` field; unset ones take
            this factory's defaults (one BiLSTM layer of 128, dropout 0.1).

    Raises:
        TypeError: an argument that is not a field of either config.
    """
    unknown = set(encoder) - {f.name for f in fields(EncoderConfig)}
    if unknown:
        raise TypeError(f"bilstm_classifier() got unknown argument(s) {sorted(unknown)}")
    enc = EncoderConfig(**{"cell": "lstm", "hidden_size": 128, "num_layers": 1, "dropout": 0.1, **encoder})
    return SequenceClassifier(ClassifierConfig(
        input_dim=input_dim, num_classes=num_classes, pooling=pooling, head_dropout=head_dropout, encoder=enc,
    ))  # fmt: skip


def bilstm_classifier_small() -> SequenceClassifier:
    """A small preset for the embedded video corpus."""
    return bilstm_classifier(hidden_size=128, num_layers=1)
