"""Shared test helpers: a tiny untrained speech bundle, and the CLI run in-process
(``from bundles import run_cli, tiny_speech_bundle``).

The layout is the recipe export's (``speech_ctc.stage_export``): a log-mel BiGRU-CTC of 16 units,
its config and safetensors weights, and on request its ONNX graph (so the torch-free engine runs
it) and extra files such as a word LM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
