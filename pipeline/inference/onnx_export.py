"""ONNX export of trained models, for onnxruntime and other ONNX runtimes.

Two graphs:

* speech: :class:`~pipeline.models.CTCModel` as it is, ``features`` (B, T, D) float32 and
  ``lengths`` (B,) int64 -> ``log_probs`` (B, T'', V) and ``out_lengths`` (B,), with B and T
  dynamic. The global CMVN (and utterance CMN) is inside, so the graph takes raw features.
* video: the frame backbone and the sequence classifier as one graph, ``frames``
  (B, T, S, S, 3) uint8 RGB and ``lengths`` (B,) int64 -> ``logits`` (B, C).

Export uses torch's TorchScript-based exporter (opset :data:`OPSET`), which turns the padded
RNNs into ONNX's own LSTM/GRU/RNN operators; the parity of every encoder configuration with
torch is tested (``tests/test_onnx_export.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.io_utils import atomic_write_bytes

log = logging.getLogger(__name__)

OPSET = 17
#: File name of the speech graph inside a bundle (see :func:`speech_record`).
BUNDLE_FILE = "model.onnx"


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], inputs: list[str], outputs: list[str],
            dynamic: dict[str, dict[int, str]]) -> bytes:
    """Traces ``module`` on ``args`` and returns the serialised ONNX model."""
    buf = io.BytesIO()
    module = module.eval()
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        # The TorchScript exporter warns about being superseded and about RNNs traced with a
        # batch size; neither applies to graphs exported with dynamic axes like these.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, buf, input_names=inputs, output_names=outputs, dynamic_axes=dynamic,
            opset_version=OPSET, dynamo=False, do_constant_folding=True,
        )
    return buf.getvalue()


def speech_onnx(model: nn.Module) -> bytes:
    """The speech graph of a :class:`~pipeline.models.CTCModel` (see the module docstring)."""
    dim = model.cfg.input_dim
    # Two utterances of different lengths, so the traced graph keeps the per-length masking.
    x = torch.randn(2, 48, dim)
    lengths = torch.tensor([48, 29])
    return _export(
        model, (x, lengths), ["features", "lengths"], ["log_probs", "out_lengths"],
        {"features": {0: "batch", 1: "time"}, "lengths": {0: "batch"},
         "log_probs": {0: "batch", 1: "out_time"}, "out_lengths": {0: "batch"}},
    )  # fmt: skip


class VideoGraph(nn.Module):
    """Backbone and classifier in one module: (B, T, S, S, 3) uint8 frames, (B,) lengths -> (B, C) logits."""

    def __init__(self, embedder: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.embedder = embedder
        self.classifier = classifier

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[:2]
        emb = self.embedder(frames.reshape(b * t, *frames.shape[2:]))  # (B * T, D)
        return self.classifier(emb.reshape(b, t, -1), lengths)


def video_onnx(embedder: nn.Module, classifier: nn.Module, frame_size: int) -> bytes:
    """The video graph (see the module docstring) for frames of ``frame_size`` pixels square."""
    frames = torch.randint(0, 256, (2, 5, frame_size, frame_size, 3), dtype=torch.uint8)
    lengths = torch.tensor([5, 3])
    return _export(
        VideoGraph(embedder, classifier), (frames, lengths), ["frames", "lengths"], ["logits"],
        {"frames": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "logits": {0: "batch"}},
    )


def speech_record(model: nn.Module, graph: bytes) -> dict[str, Any]:
    """The ``onnx`` section of a speech bundle's config for ``graph`` saved as :data:`BUNDLE_FILE`.

    ``frame_ratio`` (feature frames per output frame) lets a runtime place word timestamps
    without reading the model section.
    """
    return {
        "file": BUNDLE_FILE, "sha256": hashlib.sha256(graph).hexdigest(), "opset": OPSET,
        "frame_ratio": float(model.frame_ratio),
    }  # fmt: skip


def export_bundle(model_dir: str | Path, out: str | Path) -> tuple[Path, str]:
    """Exports a bundle's model to ``out`` (an ``.onnx`` file, written atomically).

    Returns:
        ``(out, kind)`` with kind ``"speech_ctc"`` or ``"video_classifier"``.

    Raises:
        BundleError: the bundle is missing or invalid (as when loading it for inference).
    """
    from pipeline.bundle import BundleError, load_bundle

    kind = load_bundle(model_dir).kind
    if kind == "speech_ctc":
        from pipeline.inference.transcriber import Transcriber

        graph = speech_onnx(Transcriber.from_pretrained(model_dir, lm="none").model)
    elif kind == "video_classifier":
        from pipeline.inference.labeler import ClipLabeler

        labeler = ClipLabeler.from_pretrained(model_dir)
        graph = video_onnx(labeler.embedder, labeler.classifier, labeler.backbone_cfg.frame_size)
    else:
        raise BundleError(f"{model_dir}: cannot export a bundle of kind {kind!r}")
    out = Path(out)
    atomic_write_bytes(out, graph)
    log.info("%s: %s model exported to %s (%.1f MB)", model_dir, kind, out, len(graph) / 1e6)
    return out, kind
