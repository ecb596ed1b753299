"""Shared test helpers: tiny untrained speech and video bundles, synthetic speech, and the CLI
run in-process (``from bundles import run_cli, synthetic_speech, tiny_speech_bundle, tiny_video_bundle``).

The layout is the recipe export's (``speech_ctc.stage_export``): a log-mel BiGRU-CTC of 16 units,
its config and safetensors weights, and on request its ONNX graph (so the torch-free engine runs
it) and extra files such as a word LM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch


def tiny_speech_bundle(
    out: Path, *, graph: bool = False, extra: dict[str, Any] | None = None, files: dict[str, Path] | None = None
) -> Path:
    """Saves the bundle to ``out`` and returns it.

    Args:
        out: The bundle directory (its parent is created).
        graph: Also export ``model.onnx`` and the ``onnx`` section.
        extra: More top-level config sections (e.g. ``lm``).
        files: More files copied into the bundle (e.g. the LM's).
    """
    from data_prep.features import FeatureConfig
    from pipeline.bundle import save_bundle
    from pipeline.config import to_dict
    from pipeline.models.ctc_model import CTCModel, CTCModelConfig
    from pipeline.models.encoder import EncoderConfig
    from pipeline.tokenizer import CharTokenizer

    torch.manual_seed(0)
    tokenizer = CharTokenizer()
    cfg = CTCModelConfig(
        input_dim=80, vocab_size=tokenizer.vocab_size,
        encoder=EncoderConfig(cell="gru", hidden_size=16, num_layers=1, subsampling=2),
    )  # fmt: skip
    model = CTCModel(cfg).eval()
    config = {
        "kind": "speech_ctc", "model": to_dict(cfg), "features": to_dict(FeatureConfig()),
        "tokens": tokenizer.to_list(), "weights": "model.safetensors", "metrics": {}, **(extra or {}),
    }  # fmt: skip
    files = dict(files or {})
    if graph:
        from pipeline.inference import onnx_export

        onnx = onnx_export.speech_onnx(model)
        out.parent.mkdir(parents=True, exist_ok=True)
        files[onnx_export.BUNDLE_FILE] = out.parent / f"{out.name}.model.onnx"
        files[onnx_export.BUNDLE_FILE].write_bytes(onnx)
        config["onnx"] = onnx_export.speech_record(model, onnx)
    return save_bundle(out, config, {"model.safetensors": model.state_dict()}, files)


def run_cli(capsys, *argv: str) -> tuple[int, list[dict], list[str], str]:
    """Runs the CLI in-process; returns (code, JSON rows, `seqrec: error:` lines, whole stderr)."""
    import json

    from pipeline.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    errors = [line for line in err.splitlines() if line.startswith("seqrec: error:")]
    return code, rows, errors, err


def synthetic_speech(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """(N,) float32: gliding harmonics in syllable-like bursts plus a little noise (speech to the
    VAD, and enough for a tiny model to emit a few characters)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(120 + 40 * np.sin(2 * np.pi * 0.7 * t)) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 3.1 * t), 0, None) ** 0.5
    return (0.2 * voiced * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def tiny_video_bundle(out: Path, labels: list[str], *, cell: str = "gru", hidden_size: int = 8) -> Path:
    """An untrained video bundle (the recipe export's layout): mobilenet_v3_small at 32 px over
    4 segments and a one-layer recurrent classifier; saved to ``out``, which is returned."""
    from data_prep.frame_embed import BackboneConfig, build_backbone
    from pipeline.bundle import save_bundle
    from pipeline.config import to_dict
    from pipeline.models.classifier import ClassifierConfig, SequenceClassifier
    from pipeline.models.encoder import EncoderConfig

    torch.manual_seed(0)
    bb = BackboneConfig(name="mobilenet_v3_small", frame_size=32, short_side=32, num_segments=4)
    backbone, dim = build_backbone(bb.name, "none")
    cfg = ClassifierConfig(input_dim=dim, num_classes=len(labels),
                           encoder=EncoderConfig(cell=cell, hidden_size=hidden_size, num_layers=1))  # fmt: skip
    config = {
        "kind": "video_classifier", "model": to_dict(cfg), "labels": list(labels),
        "backbone": {**to_dict(bb), "weights": "backbone.safetensors"},
        "weights": "model.safetensors", "backbone_weights": "backbone.safetensors", "metrics": {},
    }  # fmt: skip
    weights = {"model.safetensors": SequenceClassifier(cfg).state_dict(), "backbone.safetensors": backbone.state_dict()}
    return save_bundle(out, config, weights)
