"""80-dim log-mel features (torchaudio) written to a feature store.

The filterbank matches librosa's defaults (Slaney mel scale, Slaney area normalisation,
periodic Hann window, power spectrum), so ``librosa.feature.melspectrogram`` with the same
parameters and ``pad_mode="reflect"`` is a reference for tests.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
import torchaudio

from data_prep.store import FeatureStore, StoreError, StoreSummary, build_store
from pipeline.config import config_hash, to_dict

log = logging.getLogger(__name__)

# Bump when the computation changes in a way the config does not capture.
FEATURE_VERSION = 1


class FeatureError(ValueError):
    """A file cannot be turned into features; the message names the file."""


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Log-mel parameters. ``speed`` != 1 applies Kaldi-style speed perturbation."""

    sample_rate: int = 16000
    n_mels: int = 80
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    f_min: float = 20.0
    f_max: float = 7600.0
    log_floor: float = 1e-6
    speed: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        if self.sample_rate <= 0 or self.n_mels <= 0 or self.hop_length <= 0:
            problems.append("sample_rate, n_mels and hop_length must be positive")
        if not 0 < self.win_length <= self.n_fft:
            problems.append(f"win_length {self.win_length} must be in (0, n_fft={self.n_fft}]")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            problems.append(
                f"need 0 <= f_min < f_max <= sample_rate/2, got {self.f_min}, {self.f_max}"
            )
        if self.log_floor <= 0:
            problems.append(f"log_floor must be > 0, got {self.log_floor}")
        if not 0.5 <= self.speed <= 2.0:
            problems.append(f"speed must be in [0.5, 2.0], got {self.speed}")
        if problems:
            raise ValueError("invalid FeatureConfig: " + "; ".join(problems))

    @property
    def frame_rate(self) -> float:
        """Feature frames per second."""
        return self.sample_rate / self.hop_length


class LogMelExtractor(torch.nn.Module):
    """Waveform -> natural-log mel power spectrogram.

    ``T = 1 + N // hop_length`` (centred frames, reflect padding). Inputs must be longer
    than ``n_fft // 2`` samples.
    """

    def __init__(self, cfg: FeatureConfig = FeatureConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, win_length=cfg.win_length,
            hop_length=cfg.hop_length, f_min=cfg.f_min, f_max=cfg.f_max, n_mels=cfg.n_mels,
            power=2.0, center=True, pad_mode="reflect", norm="slaney", mel_scale="slaney",
        )

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Computes log-mel features.

        Args:
            waveform: (N,) or (B, N) float32 samples at ``cfg.sample_rate``.

        Returns:
            (T, n_mels) or (B, T, n_mels) float32.
        """
        if waveform.dim() not in (1, 2):
            raise ValueError(f"expected (N,) or (B, N) waveform, got {tuple(waveform.shape)}")
        mel = self.mel(waveform.float())  # (..., n_mels, T)
        return torch.log(mel + self.cfg.log_floor).transpose(-1, -2)  # -> (..., T, n_mels)


def speed_perturb(waveform: torch.Tensor, sample_rate: int, speed: float) -> torch.Tensor:
    """Kaldi/sox-style ``speed``: plays ``speed`` times faster (pitch shifts too).

    The samples are treated as if recorded at ``sample_rate * speed`` and resampled to
    ``sample_rate``, so the length becomes about ``N / speed``.

    Args:
        waveform: (N,) or (B, N) float32.
        sample_rate: Its sample rate.
        speed: > 1 shortens, < 1 lengthens.

    Returns:
        (N',) or (B, N') float32 with N' = ceil(N / speed) (up to rounding of the rate).
    """
    if speed == 1.0:
        return waveform
    orig = round(sample_rate * speed)
    return torchaudio.functional.resample(waveform, orig_freq=orig, new_freq=sample_rate)


_EXTRACTORS: dict[FeatureConfig, LogMelExtractor] = {}


def get_extractor(cfg: FeatureConfig) -> LogMelExtractor:
    """The per-process extractor for ``cfg``, built on first use."""
    extractor = _EXTRACTORS.get(cfg)
    if extractor is None:
        extractor = _EXTRACTORS[cfg] = LogMelExtractor(cfg).eval()
    return extractor


@dataclasses.dataclass(frozen=True)
class LogMelJob:
    """Picklable per-file computation for :func:`data_prep.store.build_store`."""

    cfg: FeatureConfig

    def __call__(self, path: str) -> np.ndarray:
        """Loads ``path`` and returns (T, n_mels) float32 log-mel features."""
        from data_prep.audio import load_audio

        cfg = self.cfg
        wave = load_audio(path, target_sr=cfg.sample_rate)
        wave = speed_perturb(wave, cfg.sample_rate, cfg.speed)
        if wave.numel() <= cfg.n_fft // 2:
            raise FeatureError(
                f"{path}: too short for features ({wave.numel()} samples, need more than "
                f"{cfg.n_fft // 2})"
            )
        with torch.inference_mode():
            feats = get_extractor(cfg)(wave)
        return feats.numpy()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def features_hash(manifest: Path, cfg: FeatureConfig) -> str:
    """Config hash of a feature store: the config, the manifest's bytes and the version."""
    return config_hash({
        "stage": "logmel", "version": FEATURE_VERSION, "features": to_dict(cfg),
        "manifest_sha256": _file_sha256(Path(manifest)),
    })


def entry_id(utt_id: str, speed: float) -> str:
    """Store id of an utterance: ``utt`` or ``utt-sp0.9`` under speed perturbation."""
    return utt_id if speed == 1.0 else f"{utt_id}-sp{speed:g}"


def extract_features(
    manifest: Path, store_dir: Path, cfg: FeatureConfig, *, num_workers: int = 2,
    chunk_size: int = 64,
) -> StoreSummary:
    """Computes log-mel features for every utterance of a speech manifest into a store.

    Args:
        manifest: Speech JSONL manifest.
        store_dir: Destination store (skipped when finished with the same config and
            manifest, rebuilt when either changed).
        cfg: Feature config; ``speed`` != 1 suffixes ids with ``-sp{speed}``.
        num_workers: Worker processes.
        chunk_size: Files per resumable chunk.

    Returns:
        The store summary. Files that cannot be read are listed in ``failed.jsonl``.
    """
    from data_prep.manifest import read_manifest

    manifest = Path(manifest)
    records = read_manifest(manifest, "speech")
    items = [(entry_id(r["id"], cfg.speed), r["audio_filepath"]) for r in records]
    return build_store(
        store_dir, items, LogMelJob(cfg), config_hash=features_hash(manifest, cfg),
        num_workers=num_workers, chunk_size=chunk_size, dim=cfg.n_mels,
        desc=f"log-mel {Path(store_dir).name}",
    )


def compute_cmvn(store: FeatureStore) -> tuple[np.ndarray, np.ndarray]:
    """Global CMVN statistics of a store.

    Returns:
        (mean (D,), std (D,)) float32 from ``stats.json``; std is floored at 1e-5 so that
        dividing by it is safe.

    Raises:
        StoreError: the store has no ``stats.json``.
    """
    stats = store.stats()
    if stats is None:
        raise StoreError(f"{store.store_dir}: no stats.json; rebuild the store with stats")
    mean, std = stats
    return mean, np.maximum(std, np.float32(1e-5))


__all__ = [
    "FeatureConfig", "FeatureError", "LogMelExtractor", "LogMelJob", "compute_cmvn",
    "entry_id", "extract_features", "features_hash", "get_extractor", "speed_perturb",
]
