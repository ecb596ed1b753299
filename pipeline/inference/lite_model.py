"""Numpy forward of :class:`pipeline.models.CTCModel` for one utterance (the lite engine's model).

CMVN, optional utterance CMN, conv subsampling (stride-2 Conv1d + ReLU stages), stacked
RNN/LSTM/GRU layers with torch's gate equations (uni- or bidirectional), each optionally
followed by LayerNorm, the CTC head with
upsampling, and log-softmax, in float32. ``tests/test_lite_engine.py`` holds it against the
torch model for every cell, direction and subsampling factor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pipeline.inference.lite_config import LiteModelConfig

_GATES = {"rnn": 1, "lstm": 4, "gru": 3}
_LN_EPS = 1e-5  # torch.nn.LayerNorm's default eps


def _log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """LayerNorm over the last axis of (T, D), as ``torch.nn.LayerNorm(D)``."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return ((x - mean) / np.sqrt(var + _LN_EPS) * weight + bias).astype(np.float32, copy=False)


@dataclass
class _Direction:
    """One unidirectional single-layer RNN, prepared for the loop.

    ``w_ih_t`` (D, G*H) and ``bias`` (G*H,) give all input projections in one matmul; ``w_hh_t``
    (H, G*H) is the recurrent matrix. Sigmoid gates are computed as ``0.5 + 0.5 * tanh(z / 2)``,
    so their columns are pre-scaled by 0.5 and one ``tanh`` serves every gate of a step.
    """

    w_ih_t: np.ndarray
    bias: np.ndarray
    w_hh_t: np.ndarray
    b_hn: np.ndarray | None = None  # GRU only: the new gate's recurrent bias, applied inside r * (.)


class LiteCTCModel:
    """Numpy forward of :class:`pipeline.models.CTCModel` for one utterance (float32, eval mode).

    Args:
        cfg: The architecture.
        weights: The model's state dict as numpy arrays (``cmvn.*``, ``encoder.*``, ``head.*``).

    Raises:
        ValueError: weights missing, unexpected or of the wrong shape.
    """

    def __init__(self, cfg: LiteModelConfig, weights: Mapping[str, np.ndarray]) -> None:
        self.cfg = cfg
        expected = self.expected_shapes(cfg)
        missing = sorted(set(expected) - set(weights))
        unexpected = sorted(set(weights) - set(expected))
        if missing or unexpected:
            raise ValueError(f"weights do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
        for key, shape in expected.items():
            if tuple(weights[key].shape) != shape:
                raise ValueError(f"weights: {key} has shape {tuple(weights[key].shape)}, expected {shape}")
        w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
        self.mean, self.std = w["cmvn.mean"], w["cmvn.std"]
        self.convs = []  # (3*D_in, D_out) matrices and (D_out,) biases
        for i in range(cfg.conv_stages):
            k = w[f"encoder.subsample.stages.{i}.weight"]  # (D_out, D_in, 3)
            mat = np.ascontiguousarray(k.transpose(2, 1, 0).reshape(-1, k.shape[0]))  # (3, D_in, D_out) -> (3*D_in, D_out)
            self.convs.append((mat, w[f"encoder.subsample.stages.{i}.bias"]))
        self.layers = [
            [self._prepare(w, f"encoder.layers.{i}.{d}.") for d in range(2 if cfg.bidirectional else 1)]
            for i in range(cfg.num_layers)
        ]
        self.norms = (
            [(w[f"encoder.norms.{i}.weight"], w[f"encoder.norms.{i}.bias"]) for i in range(cfg.num_layers)]
            if cfg.layer_norm
            else None
        )
        self.head_w_t = np.ascontiguousarray(w["head.proj.weight"].T)  # (H_out, k*V)
        self.head_b = w["head.proj.bias"]

    @staticmethod
    def expected_shapes(cfg: LiteModelConfig) -> dict[str, tuple[int, ...]]:
        """State-dict keys and shapes of a CTCModel with this config."""
        h, d = cfg.hidden_size, cfg.input_dim
        shapes: dict[str, tuple[int, ...]] = {"cmvn.mean": (d,), "cmvn.std": (d,)}
        for i in range(cfg.conv_stages):
            shapes[f"encoder.subsample.stages.{i}.weight"] = (h, d if i == 0 else h, 3)
            shapes[f"encoder.subsample.stages.{i}.bias"] = (h,)
        dim = h if cfg.subsampling != 1 else d
        gates = _GATES[cfg.cell] * h
        directions = 2 if cfg.bidirectional else 1
        for i in range(cfg.num_layers):
            for k in range(directions):
                p = f"encoder.layers.{i}.{k}."
                shapes.update({p + "weight_ih_l0": (gates, dim), p + "weight_hh_l0": (gates, h),
                               p + "bias_ih_l0": (gates,), p + "bias_hh_l0": (gates,)})
            dim = h * directions
            if cfg.layer_norm:
                shapes[f"encoder.norms.{i}.weight"] = shapes[f"encoder.norms.{i}.bias"] = (dim,)
        shapes["head.proj.weight"] = (cfg.vocab_size * cfg.ctc_upsample, dim)
        shapes["head.proj.bias"] = (cfg.vocab_size * cfg.ctc_upsample,)
        return shapes

    def _prepare(self, w: Mapping[str, np.ndarray], prefix: str) -> _Direction:
        h = self.cfg.hidden_size
        w_ih, w_hh = w[prefix + "weight_ih_l0"], w[prefix + "weight_hh_l0"]
        b_ih, b_hh = w[prefix + "bias_ih_l0"], w[prefix + "bias_hh_l0"]
        cell = self.cfg.cell
        if cell == "lstm":  # gates i, f, g, o: sigmoid, sigmoid, tanh, sigmoid
            scale = np.concatenate([np.full(2 * h, 0.5), np.ones(h), np.full(h, 0.5)]).astype(np.float32)
            bias, b_hn = b_ih + b_hh, None
        elif cell == "gru":  # gates r, z, n: sigmoid, sigmoid, tanh(x_n + r * (h W_hn + b_hn))
            scale = np.concatenate([np.full(2 * h, 0.5), np.ones(h)]).astype(np.float32)
            bias = b_ih + np.concatenate([b_hh[: 2 * h], np.zeros(h, np.float32)])
            b_hn = b_hh[2 * h :].copy()
        else:  # plain tanh RNN
            scale = np.ones(h, np.float32)
            bias, b_hn = b_ih + b_hh, None
        return _Direction(
            w_ih_t=np.ascontiguousarray(w_ih.T * scale),
            bias=(bias * scale).astype(np.float32),
            w_hh_t=np.ascontiguousarray(w_hh.T * scale),
            b_hn=b_hn,
        )

    @property
    def frame_ratio(self) -> float:
        """Input feature frames per output (CTC) frame."""
        return self.cfg.frame_ratio

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        """(T, D) raw log-mel -> (T'', V) float32 log-probs, T'' = ceil(T / subsampling) * ctc_upsample."""
        x = (np.asarray(feats, dtype=np.float32) - self.mean) / self.std
        if x.ndim != 2 or x.shape[1] != self.cfg.input_dim:
            raise ValueError(f"expected (T, {self.cfg.input_dim}) features, got {x.shape}")
        if self.cfg.utterance_cmn:
            x = x - x.mean(axis=0, keepdims=True, dtype=np.float32)
        for mat, bias in self.convs:
            x = self._conv(x, mat, bias)
        for i, directions in enumerate(self.layers):
            outs = [self._rnn(x, directions[0])]
            if len(directions) > 1:  # backward direction: the utterance reversed, then back
                outs.append(self._rnn(x[::-1], directions[1])[::-1])
            x = np.concatenate(outs, axis=1) if len(outs) > 1 else outs[0]
            if self.norms is not None:
                x = _layer_norm(x, *self.norms[i])
        logits = x @ self.head_w_t + self.head_b  # (T', k*V)
        logits = logits.reshape(-1, self.cfg.vocab_size)  # (T', k*V) -> (T'*k, V)
        return _log_softmax(logits).astype(np.float32, copy=False)

    @staticmethod
    def _conv(x: np.ndarray, mat: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """Conv1d(k=3, s=2, p=1) + ReLU over time: (T, D) -> (ceil(T / 2), D_out)."""
        t_out = (x.shape[0] + 1) // 2
        xp = np.zeros((2 * t_out + 1, x.shape[1]), np.float32)  # one zero frame each side (+1 if odd)
        xp[1 : x.shape[0] + 1] = x
        win = np.lib.stride_tricks.sliding_window_view(xp, 3, axis=0)[::2]  # (T', D, 3) view
        cols = win.transpose(0, 2, 1).reshape(t_out, -1)  # (T', 3, D) -> (T', 3*D)
        return np.maximum(cols @ mat + bias, 0.0)

    def _rnn(self, x: np.ndarray, d: _Direction) -> np.ndarray:
        """One direction over (T, D_in) -> (T, H), from a zero state."""
        h_size = self.cfg.hidden_size
        xs = x @ d.w_ih_t + d.bias  # (T, G*H): all input projections at once
        w_hh = d.w_hh_t
        out = np.empty((x.shape[0], h_size), np.float32)
        h = np.zeros(h_size, np.float32)
        tanh = np.tanh
        if self.cfg.cell == "lstm":
            c = np.zeros(h_size, np.float32)
            half = np.concatenate([np.full(2 * h_size, 0.5), np.zeros(h_size), np.full(h_size, 0.5)]).astype(np.float32)
            mul = np.concatenate([np.full(2 * h_size, 0.5), np.ones(h_size), np.full(h_size, 0.5)]).astype(np.float32)
            h2, h3 = 2 * h_size, 3 * h_size
            for t in range(xs.shape[0]):
                g = tanh(xs[t] + h @ w_hh) * mul + half  # i, f, o sigmoids; g tanh
                c = g[h_size:h2] * c + g[:h_size] * g[h2:h3]
                h = g[h3:] * tanh(c)
                out[t] = h
        elif self.cfg.cell == "gru":
            h2 = 2 * h_size
            b_hn = d.b_hn
            for t in range(xs.shape[0]):
                gh = h @ w_hh  # (3H,): r, z pre-scaled by 0.5
                rz = tanh(xs[t, :h2] + gh[:h2]) * 0.5 + 0.5
                n = tanh(xs[t, h2:] + rz[:h_size] * (gh[h2:] + b_hn))
                h = n + rz[h_size:] * (h - n)  # (1 - z) * n + z * h
                out[t] = h
        else:
            for t in range(xs.shape[0]):
                h = tanh(xs[t] + h @ w_hh)
                out[t] = h
        return out

