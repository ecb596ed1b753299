"""The speech model that ships inside the package: where it is, and how a bundle becomes it.

``seqrec transcribe`` without ``--model`` (or with ``--model tiny``; :func:`shipped_models`
names them) and ``Transcriber.from_pretrained()`` without a directory load
:data:`SPEECH_MODEL` (``pipeline/pretrained/speech_en/``). It is an ordinary speech bundle whose weights are stored in float16 (half the size; the model still computes in
float32) with its word LM. :func:`ship_speech_bundle` makes it from a recipe's bundle (the
speech recipe's ship script calls it); the README's model card says what it was trained on
and how well it does.
"""

from __future__ import annotations

import datetime
import tempfile
from pathlib import Path
from typing import Any

from pipeline.io_utils import file_sha256

#: The shipped English speech model (a bundle directory).
SPEECH_MODEL = Path(__file__).resolve().parent / "speech_en"


def shipped_models() -> dict[str, Path]:
    """The speech models inside the package by name, as ``--model NAME`` takes them (Whisper's
    sizes: ``tiny`` is the Whisper tiny.en upstream's; the first is the default)."""
    return {"tiny": SPEECH_MODEL}


def speech_model_dir(model: str | Path | None) -> Path:
    """The bundle directory that ``model`` names: an existing path as it is, else a shipped
    model's name (:func:`shipped_models`), and the default shipped model for None. Anything
    else is returned as a path, for the bundle loader to refuse with its own message.

    Raises:
        BundleError: a shipped model was asked for (by name or None) and this installation does
            not have it.
    """
    names = shipped_models()
    if model is not None and (Path(model).exists() or str(model) not in names):
        return Path(model)
    name = next(iter(names)) if model is None else str(model)
    # lazy: pipeline.bundle pulls in yaml; seqrec --help reaches this module
    from pipeline.bundle import CONFIG_NAME, BundleError

    if not (names[name] / CONFIG_NAME).is_file():
        raise BundleError(f"{names[name]}: no shipped speech model {name!r} in this installation; pass --model DIR")
    return names[name]


def ship_speech_bundle(
    src: str | Path, dst: str | Path = SPEECH_MODEL, *, card: dict[str, Any] | None = None, quantize: str = "int8"
) -> Path:
    """Copies a speech bundle to ``dst`` with float16 weights, its LM, a ``shipped`` record, and
    an ONNX graph made from those float16 weights (the whole chain for a model on the Whisper
    upstream), so that the torch-free engine serves it with the torch engine's results.

    Args:
        src: A recipe's ``bundle/`` (``speech_ctc``).
        dst: Where the shipped copy goes (replaced atomically).
        card: Facts for the ``shipped`` record (training data, hours, recipe command, ...).
        quantize: The graph's precision: ``"int8"`` (the default, see
            :func:`pipeline.inference.onnx_export.quantize_int8`) or ``"none"`` (float32
            computed from float16 storage, lossless).

    Returns:
        ``dst``.

    Raises:
        BundleError: ``src`` is not a loadable speech bundle.
    """
    # lazy: torch and the exporter only to ship a bundle; import cycle with pipeline.inference.transcriber
    import torch

    from pipeline.bundle import load_bundle, save_bundle
    from pipeline.inference import onnx_export
    from pipeline.inference.transcriber import Transcriber

    bundle = load_bundle(src, kind="speech_ctc")
    weights = {k: (v.half() if v.is_floating_point() else v) for k, v in bundle.load_weights().items()}
    config = {k: v for k, v in bundle.config.items() if k not in ("format_version", "onnx")}
    files: dict[str, Path] = {}
    lm = config.get("lm")
    if isinstance(lm, dict):
        files = {lm[k]: bundle.file(lm[k]) for k in ("arpa", "lexicon", "compiled") if k in lm}
    shipped = Transcriber.from_pretrained(src, lm="none")
    shipped.model.load_state_dict({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in weights.items()})
    upstream = getattr(shipped.extractor, "upstream", None)
    graph = onnx_export.speech_onnx(shipped.model, upstream, quantize)
    config["onnx"] = onnx_export.speech_record(shipped.model, graph, upstream, quantize, weights)
    config["shipped"] = {"date": datetime.date.today().isoformat(), "weights_dtype": "float16", **(card or {})}
    with tempfile.TemporaryDirectory(prefix="seqrec-ship-") as tmp:
        if isinstance(lm, dict) and "compiled" not in lm:  # from before compiled lexicons
            # lazy: the compiled lexicon pulls in numpy; only shipping a bundle needs it
            from pipeline.decoding.compiled_lexicon import COMPILED_NAME, compile_lexicon

            files[COMPILED_NAME] = Path(tmp, COMPILED_NAME)
            compile_lexicon(files[lm["arpa"]], files[lm["lexicon"]], shipped.tokenizer, files[COMPILED_NAME])
            lm["compiled"] = COMPILED_NAME
            lm["sha256"] = {**lm["sha256"], COMPILED_NAME: file_sha256(files[COMPILED_NAME])}
        files[onnx_export.BUNDLE_FILE] = Path(tmp, onnx_export.BUNDLE_FILE)
        files[onnx_export.BUNDLE_FILE].write_bytes(graph)
        return save_bundle(dst, config, {config["weights"]: weights}, files)
