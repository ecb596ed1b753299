"""The log-mel parameters the lite engine reads from a speech bundle, checked without torch.

``data_prep.features.FeatureConfig`` lives in a module that imports torch, so the lite engine
parses the bundle's ``features`` section into this flat, frozen config. Unlike
``pipeline.config.from_dict`` it has no defaults and refuses unknown keys: a key lite does not
know means a feature it does not compute (:class:`~pipeline.bundle.UnsupportedBundleError`, on
which ``--engine auto`` uses torch). The model itself needs no such copy: lite runs the bundle's
exported ONNX graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.bundle import UnsupportedBundleError
from pipeline.errors import shown

# Feature keys the lite engine understands; any other key means a feature it does not compute.
_FEATURE_KEYS = {
    "sample_rate", "n_mels", "n_fft", "win_length", "hop_length", "f_min", "f_max", "log_floor",
}


def _int(section: Mapping[str, Any], key: str, where: str, minimum: int = 1) -> int:
    value = section.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where}.{key} must be an integer >= {minimum}, got {shown(value)}")
    return value


def _number(section: Mapping[str, Any], key: str, where: str) -> float:
    value = section.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}.{key} must be a number, got {shown(value)}")
    return float(value)


def _check_keys(section: Mapping[str, Any], known: set[str], required: set[str], where: str) -> None:
    unknown = sorted(set(section) - known, key=str)
    if unknown:
        raise UnsupportedBundleError(
            f"config.yaml: {where}.{str(unknown[0])[:80]} is not supported by the lite engine (use --engine torch)"
        )
    missing = sorted(required - set(section))
    if missing:
        raise UnsupportedBundleError(
            f"config.yaml: {where}.{missing[0]} is missing (the lite engine has no defaults; use --engine torch)"
        )


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
                f"config.yaml: features.kind is {shown(feats['kind'])}; the lite engine computes "
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

