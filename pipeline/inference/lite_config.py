"""What the lite engine reads from a speech bundle's ``config.yaml``, checked without torch.

``pipeline.models.CTCModelConfig`` and ``data_prep.features.FeatureConfig`` live in modules
that import torch, so the lite engine parses the bundle's ``model`` and ``features`` sections
into these flat, frozen configs. Unlike ``pipeline.config.from_dict`` they have no defaults
and refuse unknown keys: a key lite does not know means a feature it does not implement
(:class:`~pipeline.bundle.UnsupportedBundleError`, on which ``--engine auto`` uses torch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.bundle import UnsupportedBundleError

CELLS = ("rnn", "lstm", "gru")
#: Subsampling factor -> stride-2 conv stages (as ``pipeline.models.encoder._STAGES``).
CONV_STAGES = {1: 0, 2: 1, 4: 2, 8: 3}

# Config keys the lite engine understands; any other key means a feature it does not implement.
_MODEL_KEYS = {"input_dim", "input_layers", "vocab_size", "encoder", "ctc_upsample", "utterance_cmn"}
_ENCODER_KEYS = {
    "cell", "hidden_size", "num_layers", "bidirectional", "subsampling", "dropout", "impl", "layer_norm",
}
_FEATURE_KEYS = {
    "sample_rate", "n_mels", "n_fft", "win_length", "hop_length", "f_min", "f_max", "log_floor",
}


def _int(section: Mapping[str, Any], key: str, where: str, minimum: int = 1) -> int:
    value = section.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where}.{key} must be an integer >= {minimum}, got {value!r}")
    return value


def _number(section: Mapping[str, Any], key: str, where: str) -> float:
    value = section.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}.{key} must be a number, got {value!r}")
    return float(value)


def _bool(section: Mapping[str, Any], key: str, where: str, default: bool | None = None) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{where}.{key} must be true or false, got {value!r}")
    return value


def _check_keys(section: Mapping[str, Any], known: set[str], required: set[str], where: str) -> None:
    unknown = sorted(set(section) - known)
    if unknown:
        raise UnsupportedBundleError(
            f"config.yaml: {where}.{unknown[0]} is not supported by the lite engine (use --engine torch)"
        )
    missing = sorted(required - set(section))
    if missing:
        raise UnsupportedBundleError(
            f"config.yaml: {where}.{missing[0]} is missing (the lite engine has no defaults; use --engine torch)"
        )


@dataclass(frozen=True)
class LiteModelConfig:
    """What the lite forward needs of a bundle's ``model`` section (a ``CTCModelConfig``)."""

    input_dim: int
    vocab_size: int
    cell: str
    hidden_size: int
    num_layers: int
    bidirectional: bool
    subsampling: int
    ctc_upsample: int = 1
    utterance_cmn: bool = False
    layer_norm: bool = False  # LayerNorm on each RNN layer's output

    @classmethod
    def from_config(cls, model: Mapping[str, Any]) -> LiteModelConfig:
        """Parses a bundle's ``model`` mapping (as written by ``pipeline.config.to_dict``).

        Raises:
            UnsupportedBundleError: a key lite does not know, or a required key is missing.
            ValueError: a value of the wrong type or out of range.
        """
        enc = model.get("encoder")
        if not isinstance(enc, dict):
            raise ValueError(f"model.encoder must be a mapping, got {type(enc).__name__}")
        _check_keys(model, _MODEL_KEYS, {"input_dim", "vocab_size", "encoder"}, "model")
        if model.get("input_layers", 1) != 1:
            raise UnsupportedBundleError(
                "config.yaml: model.input_layers > 1 (an upstream layer mix) is not supported by the "
                "lite engine (use --engine torch)"
            )
        _check_keys(enc, _ENCODER_KEYS, {"cell", "hidden_size", "num_layers", "bidirectional", "subsampling"},
                    "model.encoder")
        cell = enc.get("cell")
        if cell not in CELLS:
            raise ValueError(f"model.encoder.cell must be one of {list(CELLS)}, got {cell!r}")
        subsampling = _int(enc, "subsampling", "model.encoder")
        if subsampling not in CONV_STAGES:
            raise ValueError(f"model.encoder.subsampling must be 1, 2, 4 or 8, got {subsampling}")
        return cls(
            input_dim=_int(model, "input_dim", "model"),
            vocab_size=_int(model, "vocab_size", "model"),
            cell=cell,
            hidden_size=_int(enc, "hidden_size", "model.encoder"),
            num_layers=_int(enc, "num_layers", "model.encoder", minimum=0),
            bidirectional=_bool(enc, "bidirectional", "model.encoder"),
            subsampling=subsampling,
            ctc_upsample=_int(model, "ctc_upsample", "model") if "ctc_upsample" in model else 1,
            utterance_cmn=_bool(model, "utterance_cmn", "model", default=False),
            layer_norm=_bool(enc, "layer_norm", "model.encoder", default=False),
        )

    @property
    def frame_ratio(self) -> float:
        """Input feature frames per output (CTC) frame."""
        return self.subsampling / self.ctc_upsample

    @property
    def conv_stages(self) -> int:
        """Stride-2 conv stages of the subsampling front end."""
        return CONV_STAGES[self.subsampling]


@dataclass(frozen=True)
class LiteFeatureConfig:
    """The log-mel parameters of a bundle's ``features`` section (a ``FeatureConfig``)."""

    sample_rate: int
    n_mels: int
    n_fft: int
    win_length: int
    hop_length: int
    f_min: float
    f_max: float
    log_floor: float

    @classmethod
    def from_config(cls, feats: Mapping[str, Any]) -> LiteFeatureConfig:
        """Parses and checks a ``features`` mapping (``speed`` is ignored, as at inference)."""
        # speed and upstream_layers do not matter at inference; kind must be log-mel.
        _check_keys(feats, _FEATURE_KEYS | {"speed", "upstream_layers", "kind"}, _FEATURE_KEYS, "features")
        if feats.get("kind", "logmel") != "logmel":
            raise UnsupportedBundleError(
                f"config.yaml: features.kind is {feats['kind']!r}; the lite engine computes "
                "logmel features only (use --engine torch)"
            )
        cfg = cls(
            sample_rate=_int(feats, "sample_rate", "features"),
            n_mels=_int(feats, "n_mels", "features"),
            n_fft=_int(feats, "n_fft", "features"),
            win_length=_int(feats, "win_length", "features"),
            hop_length=_int(feats, "hop_length", "features"),
            f_min=_number(feats, "f_min", "features"),
            f_max=_number(feats, "f_max", "features"),
            log_floor=_number(feats, "log_floor", "features"),
        )
        if not cfg.win_length <= cfg.n_fft:
            raise ValueError(f"features: win_length {cfg.win_length} must be in (0, n_fft={cfg.n_fft}]")
        if not 0 <= cfg.f_min < cfg.f_max <= cfg.sample_rate / 2:
            raise ValueError(f"features: need 0 <= f_min < f_max <= sample_rate/2, got {cfg.f_min}, {cfg.f_max}")
        if cfg.log_floor <= 0:
            raise ValueError(f"features: log_floor must be > 0, got {cfg.log_floor}")
        return cfg

