"""Whisper's input geometry and log-mel front end in numpy (no torch).

The torch upstream (:mod:`data_prep.whisper_upstream`) and the torch-free engine
(:mod:`pipeline.inference.lite`) share these facts: the sample rate, the STFT, the 30 s encoder
window, how long audio is cut into windows, and how many encoder frames a waveform gives.

Pipeline for one window of N samples at 16 kHz::

    wave (N,) --log_mel--> (80, N // 160) --encoder--> (ceil((N // 160) / 2), dim)
"""

from __future__ import annotations

import math

import numpy as np

from data_prep.features_numpy import mel_filterbank

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
CHUNK_SAMPLES = 30 * SAMPLE_RATE  # 480000 samples -> 3000 mel frames -> 1500 encoder frames
SAMPLES_PER_FRAME = 2 * HOP  # one encoder frame per 20 ms (50 Hz)
#: ``onnx.input`` of a bundle whose graph reads :func:`window_batch`'s arrays.
GRAPH_INPUT = "whisper_windows"


def num_frames(num_samples: int) -> int:
    """Encoder frames for ``num_samples`` of 16 kHz audio: ceil((N // 160) / 2)."""
    return (num_samples // HOP + 1) // 2


def chunk_bounds(num_samples: int) -> list[tuple[int, int]]:
    """Near-equal windows of <= 30 s, all but the last a multiple of 320 samples.

    (start, stop) sample pairs covering [0, num_samples) with no gap or overlap; the last
    window is never shorter than 1 s unless it is the only one.
    """
    n = max(1, math.ceil(num_samples / CHUNK_SAMPLES))
    step = math.ceil(num_samples / n / SAMPLES_PER_FRAME) * SAMPLES_PER_FRAME
    bounds = [(s, min(s + step, num_samples)) for s in range(0, num_samples, step)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < SAMPLE_RATE:  # only for hours
        start = bounds[-2][0]
        mid = start + (num_samples - start) // (2 * SAMPLES_PER_FRAME) * SAMPLES_PER_FRAME
        bounds[-2:] = [(start, mid), (mid, num_samples)]
    return bounds


def mel_filters() -> np.ndarray:
    """(80, 201) float32: librosa's ``filters.mel(sr=16000, n_fft=400, n_mels=80)``, Whisper's."""
    return mel_filterbank(N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, N_MELS, SAMPLE_RATE).T.copy()


_WINDOW = (0.5 - 0.5 * np.cos(2.0 * math.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann
_FILTERS: np.ndarray | None = None


def log_mel(wave: np.ndarray) -> np.ndarray:
    """Whisper's log-mel of one window: (N,) float32 at 16 kHz, N > 200 -> (80, N // 160) float32.

    Centred STFT (reflect padding of 200 samples), periodic Hann window of 400, hop 160, power
    spectrum with the last frame dropped, 80 Slaney mel filters, ``log10(max(., 1e-10))``,
    clamped to (max - 8) over the window, then ``(x + 4) / 4``. No padding to 30 s.
    """
    global _FILTERS
    if _FILTERS is None:
        _FILTERS = mel_filters()
    x = np.asarray(wave, dtype=np.float32).reshape(-1)
    n, pad = x.size, N_FFT // 2
    if n <= pad:
        raise ValueError(f"audio too short: {n} samples, need > {pad}")
    x = np.concatenate([x[1 : pad + 1][::-1], x, x[n - pad - 1 : n - 1][::-1]])
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP][: n // HOP]  # (T, 400)
    spec = np.fft.rfft(frames * _WINDOW, axis=-1)  # (T, 201)
    power = (spec.real * spec.real + spec.imag * spec.imag).astype(np.float32)
    mel = np.log10(np.maximum(_FILTERS @ power.T, np.float32(1e-10)))  # (80, T)
    return ((np.maximum(mel, mel.max() - 8.0) + 4.0) / 4.0).astype(np.float32)


def window_batch(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inputs of a whole-chain speech graph for one waveform (see ``onnx_export``).

    Returns:
        mel (C, 80, T_mel) float32, the log-mel of each window of :func:`chunk_bounds`,
        zero-padded to the longest; mel_lengths (C,) int64; frame_index (T,) int64, the
        positions of the ``num_frames(N)`` valid encoder frames in the (C * ceil(T_mel / 2))
        frames of the padded windows, in time order.
    """
    mels = [log_mel(wave[a:b]) for a, b in chunk_bounds(len(wave))]
    lengths = np.array([m.shape[1] for m in mels], dtype=np.int64)
    t_mel = int(lengths.max())
    batch = np.zeros((len(mels), N_MELS, t_mel), np.float32)
    for i, m in enumerate(mels):
        batch[i, :, : m.shape[1]] = m
    per_window = (t_mel + 1) // 2
    index = np.concatenate([np.arange((n + 1) // 2) + i * per_window for i, n in enumerate(lengths)])
    return batch, lengths, index.astype(np.int64)
