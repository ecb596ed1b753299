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
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from data_prep.whisper_frontend import GRAPH_INPUT, window_batch
from pipeline.bundle import BundleError, load_bundle
from pipeline.errors import SeqrecError
from pipeline.inference.labeler import ClipLabeler
from pipeline.inference.transcriber import Transcriber
from pipeline.io_utils import TEMP_TOKEN, atomic_write_bytes

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


class ExportWriteError(SeqrecError, OSError):
    """The exported graph could not be written to its file; the message is
    ``<out>: cannot write: <reason>``, never the name of the temporary file."""


def _write_error(out: Path, exc: OSError) -> ExportWriteError:
    reason = exc.strerror or type(exc).__name__
    # What failed, when that is neither OUT nor the temporary it is written through (e.g. a
    # file where OUT's directory should be).
    other = exc.filename
    if other is not None and Path(other) != out and TEMP_TOKEN not in Path(other).name:
        reason = f"{reason}: {other}"
    return ExportWriteError(f"{out}: cannot write: {reason}")


class UpstreamChain(nn.Module):
    """The frozen upstream encoder and a CTC model in one module, from Whisper log-mel windows.

    ``forward(mel (C, 80, T_mel), mel_lengths (C,), frame_index (T,))`` -> log-probs
    (1, T'', V) and output lengths (1,): the C zero-padded windows of one recording
    (:func:`data_prep.whisper_frontend.window_batch`) go through the encoder together, the
    chosen hidden states of the T valid frames are gathered in time order, and the CTC model
    reads them as one utterance. The same numbers as the upstream followed by the model.
    """

    def __init__(self, encoder: nn.Module, layers: tuple[int, ...], model: nn.Module) -> None:
        super().__init__()
        self.encoder, self.layers, self.model = encoder, tuple(layers), model

    def forward(
        self, mel: torch.Tensor, mel_lengths: torch.Tensor, frame_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(mel, mel_lengths)
        feats = torch.cat([hidden[i] for i in self.layers], dim=-1)  # (C, T_win, L * D)
        frames = feats.reshape(-1, feats.shape[-1])[frame_index][None]  # (1, T, L * D)
        return self.model(frames, torch.ones(1, dtype=torch.long) * frame_index.shape[0])


def speech_onnx(model: nn.Module, upstream: Any = None, quantize: str = "none") -> bytes:
    """The speech graph of a :class:`~pipeline.models.CTCModel` (see the module docstring).

    With ``upstream`` (a :class:`data_prep.whisper_upstream.WhisperUpstream`), the graph is
    the whole chain from Whisper log-mel windows (:class:`UpstreamChain`), so a runtime needs
    neither torch nor the upstream's package. ``quantize="int8"``: :func:`quantize_int8`;
    otherwise float32, its float16-exact weights stored as float16 (:func:`half_storage`,
    lossless).
    """
    if upstream is not None:
        chain = UpstreamChain(upstream.encoder, upstream.layers, model)
        wave = torch.randn(47 * 16000 + 1234, generator=torch.Generator().manual_seed(0)).numpy()
        mel, lengths, index = (torch.from_numpy(a) for a in window_batch(0.1 * wave))  # 2 windows
        graph = _export(
            chain, (mel, lengths, index), ["mel", "mel_lengths", "frame_index"], ["log_probs", "out_lengths"],
            {"mel": {0: "windows", 2: "mel_time"}, "mel_lengths": {0: "windows"}, "frame_index": {0: "time"},
             "log_probs": {1: "out_time"}},
        )  # fmt: skip
    else:
        # Two utterances of different lengths, so the traced graph keeps the per-length masking.
        x = torch.randn(2, 48, model.cfg.input_dim)
        graph = _export(
            model, (x, torch.tensor([48, 29])), ["features", "lengths"], ["log_probs", "out_lengths"],
            {"features": {0: "batch", 1: "time"}, "lengths": {0: "batch"},
             "log_probs": {0: "batch", 1: "out_time"}, "out_lengths": {0: "batch"}},
        )  # fmt: skip
    return _precision(graph, quantize)


class _LastHidden(nn.Module):
    """The upstream encoder's output alone: mel (C, 80, T_mel), mel_lengths (C,) -> (C, T, D)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, mel: torch.Tensor, mel_lengths: torch.Tensor) -> torch.Tensor:
        return self.encoder(mel, mel_lengths)[-1]


def encoder_onnx(encoder: nn.Module, quantize: str = "none") -> bytes:
    """The upstream encoder alone as a graph (for comparisons with other runtimes, e.g.
    CTranslate2's Whisper encoder): ``mel`` (C, 80, T_mel) float32 and ``mel_lengths`` (C,)
    int64 -> ``hidden`` (C, T_mel / 2, D), the encoder's output (after its final LayerNorm).
    ``quantize`` as for :func:`speech_onnx`."""
    mel = torch.randn(2, 80, 600, generator=torch.Generator().manual_seed(0))
    graph = _export(
        _LastHidden(encoder), (mel, torch.tensor([600, 410])), ["mel", "mel_lengths"], ["hidden"],
        {"mel": {0: "windows", 2: "mel_time"}, "mel_lengths": {0: "windows"}, "hidden": {0: "windows", 1: "time"}},
    )  # fmt: skip
    return _precision(graph, quantize)


def _precision(graph: bytes, quantize: str) -> bytes:
    if quantize == "int8":
        return quantize_int8(graph)  # from float32 initialisers (it cannot see through a Cast)
    if quantize != "none":
        raise ValueError(f"unknown quantization {quantize!r} (known: {', '.join(QUANTIZATIONS)})")
    return half_storage(graph)


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


#: ``onnx.input`` of a bundle whose graph starts at Whisper log-mel windows (:class:`UpstreamChain`).
WHISPER_WINDOWS = GRAPH_INPUT


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of the safetensors file that :func:`pipeline.bundle.save_bundle` writes for ``state``."""
    # lazy: safetensors.torch only for the digest
    from safetensors.torch import save

    return hashlib.sha256(save({k: v.detach().cpu().contiguous() for k, v in state.items()})).hexdigest()


def speech_record(
    model: nn.Module, graph: bytes, upstream: Any = None, quantize: str = "none",
    weights: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The ``onnx`` section of a speech bundle's config for ``graph`` saved as :data:`BUNDLE_FILE`.

    ``frame_ratio`` (feature frames per output frame) lets a runtime place word timestamps
    without reading the model section; ``input`` says what the graph reads: ``features`` (the
    bundle's log-mel) or :data:`WHISPER_WINDOWS` (a graph made with ``upstream``); ``precision``
    is float32 or int8; ``weights_sha256`` names the weights file the graph was made from (the
    torch-free engine refuses a graph beside other weights).
    """
    return {
        "file": BUNDLE_FILE, "sha256": hashlib.sha256(graph).hexdigest(), "opset": OPSET,
        "frame_ratio": float(model.frame_ratio), "input": WHISPER_WINDOWS if upstream is not None else "features",
        "precision": "int8" if quantize == "int8" else "float32", "weights_sha256": weights_digest(model.state_dict() if weights is None else weights),
    }  # fmt: skip


def half_storage(graph: bytes, min_size: int = 1024) -> bytes:
    """``graph`` with every float32 weight that float16 holds exactly stored as float16, behind a
    ``Cast`` back to float32: lossless (the graph computes the very same numbers), and up to half
    the file. Whisper's weights come as float16, and so do a shipped model's, so a whole-chain
    graph of them halves. Weights of fewer than ``min_size`` values stay as they are."""
    # lazy: onnx only for float16 storage
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load_from_string(graph)
    kept, casts = [], []
    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT and np.prod(init.dims) >= min_size:
            values = numpy_helper.to_array(init)
            half = values.astype(np.float16)
            if np.array_equal(half.astype(np.float32), values):
                kept.append(numpy_helper.from_array(half, f"{init.name}.fp16"))
                casts.append(helper.make_node("Cast", [f"{init.name}.fp16"], [init.name], to=TensorProto.FLOAT))
                continue
        kept.append(init)
    if not casts:
        return graph
    nodes = list(model.graph.node)
    del model.graph.initializer[:], model.graph.node[:]
    model.graph.initializer.extend(kept)
    model.graph.node.extend(casts + nodes)
    return model.SerializeToString()


#: Precisions ``seqrec export --quantize`` writes; "int8" is onnxruntime's dynamic quantisation.
QUANTIZATIONS = ("none", "int8")


def quantize_int8(graph: bytes) -> bytes:
    """``graph`` with int8 weights: onnxruntime's dynamic quantisation of its MatMul, Gemm and
    LSTM/GRU weights, per output channel (activations are quantised per call, from their own
    range), so the graph is about 3.5 times smaller and its matrix products run in int8.
    Weights are unsigned: on CPUs without VNNI, onnxruntime's u8 x s8 products can saturate,
    and signed weights cost the shipped model 0.4 WER points where unsigned ones cost none
    (and ran faster). Per-channel scales halve the accuracy cost of one scale per tensor
    (docs/results.md)."""
    # lazy: onnxruntime's quantizer only for int8 export
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="seqrec-quantize-") as tmp:
        src, dst = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(graph)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantiser logs its advice to pre-process on the root logger
        try:
            quantize_dynamic(src, dst, weight_type=QuantType.QUInt8, per_channel=True)
        finally:
            root.setLevel(level)
        return dst.read_bytes()


def export_bundle(model_dir: str | Path, out: str | Path, quantize: str = "none") -> tuple[Path, str]:
    """Exports a bundle's model to ``out`` (an ``.onnx`` file, written atomically), in float32 or,
    with ``quantize="int8"``, through :func:`quantize_int8`. A speech bundle on an upstream
    gives the whole chain from Whisper log-mel windows (:class:`UpstreamChain`).

    Returns:
        ``(out, kind)`` with kind ``"speech_ctc"`` or ``"video_classifier"``.

    Raises:
        BundleError: the bundle is missing or invalid (as when loading it for inference).
        ExportWriteError: ``out`` cannot be written (it is a directory, a file stands where
            its directory should be, the disk is full, ...); nothing is left behind.
    """

    if quantize not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantize!r} (known: {', '.join(QUANTIZATIONS)})")

    out = Path(out)
    if out.is_dir():  # found before the export, not by the rename at its end
        raise ExportWriteError(f"{out}: cannot write: Is a directory")
    kind = load_bundle(model_dir).kind
    if kind == "speech_ctc":
        transcriber = Transcriber.from_pretrained(model_dir, lm="none")
        graph = speech_onnx(transcriber.model, getattr(transcriber.extractor, "upstream", None), quantize)
    elif kind == "video_classifier":
        labeler = ClipLabeler.from_pretrained(model_dir)
        graph = _precision(video_onnx(labeler.embedder, labeler.classifier, labeler.backbone_cfg.frame_size), quantize)
    else:
        raise BundleError(f"{model_dir}: cannot export a bundle of kind {kind!r}")
    try:
        atomic_write_bytes(out, graph)
    except OSError as exc:
        raise _write_error(out, exc) from exc
    log.info("%s: %s model exported to %s (%.1f MB)", model_dir, kind, out, len(graph) / 1e6)
    return out, kind
