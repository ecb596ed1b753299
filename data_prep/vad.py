"""Voice activity detection over a stream: Silero VAD's speech probability per 32 ms frame.

The model is the ``silero-vad`` package's (MIT; pinned in ``pyproject.toml``): its "sequence"
ONNX graph, which runs a block of frames per call and hands the LSTM state back, so that audio
can be fed a block at a time and nothing but that state is kept. It runs on onnxruntime with one
thread; the package's own Python module is not imported (it imports torch and sets torch's
thread count to 1 for the whole process). The file's sha256 is checked on first use.

A frame is 512 samples at 16 kHz, preceded by the last 64 samples of the frame before (zeros
for the first), as the package's streaming model reads it. :class:`ConstantDetector` is the
stand-in without a model (every frame speech): chunking then falls back to fixed windows.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import numpy as np

from pipeline.errors import SeqrecError
from pipeline.io_utils import file_sha256

#: The package's sequence model and its pinned hash.
SILERO_PACKAGE = "silero-vad"
SILERO_MODULE = "silero_vad"
SILERO_FILE = "data/silero_vad_16k_sequence.onnx"
SILERO_SHA256 = "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85"
SAMPLE_RATE = 16000
FRAME_SAMPLES = 512  # 32 ms
CONTEXT_SAMPLES = 64
STATE_SHAPE = (1, 1, 128)
#: Frames per ONNX call (16 s of audio).
MAX_FRAMES = 512


class VADError(SeqrecError, RuntimeError):
    """The voice activity detector cannot be loaded; the one-line message says why."""


def silero_path() -> Path:
    """Where the installed ``silero-vad`` package keeps its sequence model (not imported)."""
    spec = importlib.util.find_spec(SILERO_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise VADError(f"{SILERO_MODULE}: package not installed; run `pip install {SILERO_PACKAGE}`")
    path = Path(next(iter(spec.submodule_search_locations))) / SILERO_FILE
    if not path.is_file():
        raise VADError(f"{path}: file missing from the installed {SILERO_PACKAGE} package")
    return path


@functools.lru_cache(maxsize=1)
def _session(path: str):
    """One onnxruntime session per process (the streaming state lives in each detector)."""
    # Before the import: onnxruntime 1.29+ otherwise writes a telemetry database and a device
    # id under ~/.cache/Microsoft/DeveloperTools/.onnxruntime on every start.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    # lazy: onnxruntime only when the detector first runs
    import onnxruntime as ort

    actual = file_sha256(path)
    if actual != SILERO_SHA256:
        raise VADError(f"{path}: sha256 {actual}, expected {SILERO_SHA256} ({SILERO_PACKAGE} of another version?)")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


class SileroDetector:
    """Streaming Silero VAD: ``push(samples)`` -> speech probability of each completed frame.

    Audio is (n,) float32 at 16 kHz, in blocks of any size; samples that do not fill a frame
    wait for the next call. ``finish()`` zero-pads the last partial frame. Holds one frame,
    the 64-sample context and the LSTM state between calls.

    Raises:
        VADError: the package or its file is missing or altered.
    """

    sample_rate = SAMPLE_RATE
    frame_samples = FRAME_SAMPLES

    def __init__(self) -> None:
        self.session = _session(str(silero_path()))
        self.state = (np.zeros(STATE_SHAPE, np.float32), np.zeros(STATE_SHAPE, np.float32))
        self.context = np.zeros(CONTEXT_SAMPLES, np.float32)
        self.rest = np.zeros(0, np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """(n,) float32 -> (f,) float32 probabilities, f = frames completed by these samples."""
        buf = np.concatenate([self.rest, np.asarray(samples, np.float32).reshape(-1)])
        whole = buf.size // FRAME_SAMPLES * FRAME_SAMPLES
        self.rest = buf[whole:].copy()
        return self._frames(buf[:whole].reshape(-1, FRAME_SAMPLES))

    def finish(self) -> np.ndarray:
        """The probability of the last, zero-padded partial frame (empty if there is none)."""
        if self.rest.size == 0:
            return np.zeros(0, np.float32)
        frame = np.zeros((1, FRAME_SAMPLES), np.float32)
        frame[0, : self.rest.size] = self.rest
        self.rest = np.zeros(0, np.float32)
        return self._frames(frame)

    def _frames(self, frames: np.ndarray) -> np.ndarray:
        """(f, 512) frames -> (f,) probabilities, in calls of at most :data:`MAX_FRAMES`."""
        out = []
        for i in range(0, frames.shape[0], MAX_FRAMES):
            block = frames[i : i + MAX_FRAMES]
            contexts = np.concatenate([self.context[None], block[:-1, -CONTEXT_SAMPLES:]])  # (b, 64)
            self.context = block[-1, -CONTEXT_SAMPLES:].copy()
            probs, h, c = self.session.run(
                ["speech_probs", "hn", "cn"],
                {"input": np.concatenate([contexts, block], axis=1), "h": self.state[0], "c": self.state[1]},
            )
            self.state = (h, c)
            out.append(np.asarray(probs, np.float32).reshape(-1))
        return np.concatenate(out) if out else np.zeros(0, np.float32)


class ConstantDetector:
    """A detector without a model: every frame has probability ``value`` (default: speech).

    With it, chunking cuts fixed windows with overlap. Tests use it with their own values.
    """

    frame_samples = FRAME_SAMPLES

    def __init__(self, value: float = 1.0, sample_rate: int = SAMPLE_RATE) -> None:
        self.value = float(value)
        self.sample_rate = sample_rate
        self.rest = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        total = self.rest + int(np.asarray(samples).size)
        self.rest = total % FRAME_SAMPLES
        return np.full(total // FRAME_SAMPLES, self.value, np.float32)

    def finish(self) -> np.ndarray:
        n, self.rest = int(self.rest > 0), 0
        return np.full(n, self.value, np.float32)


__all__ = ["FRAME_SAMPLES", "SILERO_SHA256", "ConstantDetector", "SileroDetector", "VADError", "silero_path"]
