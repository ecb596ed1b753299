"""Models: one public model per file, keyword-only builders and named presets."""

from pipeline.models.classifier import (
    ClassifierConfig,
    SequenceClassifier,
    bilstm_classifier,
    bilstm_classifier_small,
)
from pipeline.models.ctc_model import CTCModel, CTCModelConfig, bilstm_ctc, bilstm_ctc_small
from pipeline.models.encoder import EncoderConfig, RNNEncoder
from pipeline.models.mean_pool import MeanPoolClassifier, MeanPoolConfig

__all__ = [
    "CTCModel",
    "CTCModelConfig",
    "ClassifierConfig",
    "EncoderConfig",
    "MeanPoolClassifier",
    "MeanPoolConfig",
    "RNNEncoder",
    "SequenceClassifier",
    "bilstm_classifier",
    "bilstm_classifier_small",
    "bilstm_ctc",
    "bilstm_ctc_small",
]
