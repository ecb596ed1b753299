"""Log-mel features in numpy: the same numbers as :class:`data_prep.features.LogMelExtractor`.

Used by the torch-free lite engine (:mod:`pipeline.inference.lite`); importing this module
loads numpy only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pipeline.inference.lite_config import LiteFeatureConfig


def _hz_to_mel_slaney(freq: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    freq = np.asarray(freq, dtype=np.float64)
    safe = np.maximum(freq, min_log_hz)
    return np.where(freq >= min_log_hz, min_log_mel + np.log(safe / min_log_hz) / logstep, freq / f_sp)


def _mel_to_hz_slaney(mels: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


def mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> np.ndarray:
    """Slaney-scale, Slaney-normalised triangular filters, as
    ``torchaudio.functional.melscale_fbanks(..., norm="slaney", mel_scale="slaney")``.

    Returns:
        (n_freqs, n_mels) float32.
    """
    all_freqs = np.linspace(0, sample_rate // 2, n_freqs)
    m_pts = np.linspace(_hz_to_mel_slaney(f_min), _hz_to_mel_slaney(f_max), n_mels + 2)
    f_pts = _mel_to_hz_slaney(m_pts)
    f_diff = f_pts[1:] - f_pts[:-1]  # (n_mels + 1,)
    slopes = f_pts[None, :] - all_freqs[:, None]  # (n_freqs, n_mels + 2)
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))
    fb *= 2.0 / (f_pts[2 : n_mels + 2] - f_pts[:n_mels])  # Slaney area normalisation
    return fb.astype(np.float32)


class LogMel:
    """Waveform -> natural-log mel power spectrogram, as :class:`data_prep.features.LogMelExtractor`.

    Centred frames with reflect padding (``T = 1 + N // hop_length``), a periodic Hann window of
    ``win_length`` centred in the ``n_fft`` frame, power spectrum, Slaney filterbank, then
    ``log(mel + log_floor)``.

    Args:
        cfg: The parameters: a ``LiteFeatureConfig``, or any object with its attributes (such
            as a ``data_prep.features.FeatureConfig``).
    """

    #: Frames per block, bounding memory for long inputs.
    block_frames = 4096

    def __init__(self, cfg: LiteFeatureConfig) -> None:
        self.cfg = cfg
        n = np.arange(cfg.win_length)
        hann = 0.5 - 0.5 * np.cos(2.0 * math.pi * n / cfg.win_length)  # periodic Hann
        self.window = np.zeros(cfg.n_fft, np.float32)
        left = (cfg.n_fft - cfg.win_length) // 2
        self.window[left : left + cfg.win_length] = hann
        self.fbank = mel_filterbank(cfg.n_fft // 2 + 1, cfg.f_min, cfg.f_max, cfg.n_mels, cfg.sample_rate)

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        """(N,) float32 waveform (N > n_fft // 2) -> (T, n_mels) float32."""
        cfg = self.cfg
        pad = cfg.n_fft // 2
        x = np.asarray(wave, dtype=np.float32)
        n = x.size
        if x.ndim != 1 or n <= pad:
            raise ValueError(f"waveform of shape {x.shape} is too short: need more than {pad} (n_fft // 2) samples")
        x = np.concatenate([x[1 : pad + 1][::-1], x, x[n - pad - 1 : n - 1][::-1]])  # reflect padding
        frames = np.lib.stride_tricks.sliding_window_view(x, cfg.n_fft)[:: cfg.hop_length]  # (T, n_fft) view
        out = np.empty((frames.shape[0], cfg.n_mels), np.float32)
        for i in range(0, frames.shape[0], self.block_frames):
            spec = np.fft.rfft(frames[i : i + self.block_frames] * self.window)  # (t, n_freqs) complex64
            power = spec.real * spec.real + spec.imag * spec.imag
            mel = power @ self.fbank  # (t, n_freqs) @ (n_freqs, n_mels)
            out[i : i + self.block_frames] = np.log(mel + np.float32(cfg.log_floor))
        return out

