"""One entry point for transcription: :func:`load_transcriber` picks the engine.

Two engines transcribe a speech bundle:

* ``lite`` (:class:`pipeline.inference.lite.LiteTranscriber`): numpy, onnxruntime and
  flashlight-text, no torch: it starts in a fraction of the time and memory.
* ``torch`` (:class:`pipeline.inference.transcriber.Transcriber`): the reference; GPUs, and
  batches of many short files decoded together.

Both read a file longer than 60 s (by its header, or found while reading) a block at a time
and decode it in chunks cut at pauses. ``engine="auto"`` (the default) runs on the lite engine
on CPU whenever the bundle has a graph it can run, else on torch (a GPU, or a bundle from
before ONNX export). With a float32 graph both give the same transcripts; the shipped
model's graph is int8, which on its unseen-engine test files is as accurate as torch's
float32 (23.62 against 23.76 WER) with slightly different words here and there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.pretrained import speech_model_dir

log = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "lite")


def load_transcriber(
    model: str | Path | None = None,
    *,
    engine: str = "auto",
    lm: str | Path | None = "auto",
    beam_size: int | None = None,
    device: str = "cpu",
    threads: int | None = None,
    hotwords: Any = None,
) -> Any:
    """A transcriber for a speech bundle (None: the English model shipped with seqrec).

    Args:
        model: The bundle directory.
        engine: ``"auto"`` (see the module docstring), ``"lite"`` or ``"torch"``.
        lm: ``"auto"`` (the bundle's word LM), ``"none"``, or an ARPA/KenLM file.
        beam_size: Beam width (default: the LM's tuned width; greedy without an LM).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (the torch engine's).
        threads: CPU threads of the engine that runs (default: onnxruntime 2 where two cores
            are usable, torch its own).
        hotwords: Words or phrases the word-level search favours: strings ``"phrase"`` or
            ``"phrase:weight"``, ``(phrase, weight)`` pairs, or the ``Path`` of a hotwords file
            (:mod:`pipeline.decoding.hotwords`); words outside the lexicon are added. Both
            engines give the same results with them.

    Returns:
        A ``LiteTranscriber`` or a ``Transcriber``: ``transcribe(paths)`` and
        ``transcribe_iter(paths)`` give
        :class:`~pipeline.inference.transcription.Transcription` results; ``engine`` says which.

    Raises:
        ValueError: an unknown engine, or the lite engine asked for on a GPU.
        HotwordError: a hotword entry is malformed, none can be spelt, or there is no word LM.
        BundleError: the bundle (or its LM) cannot be used, with one line naming the file.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")
    model = speech_model_dir(model)
    on_cpu = device.lower() == "cpu"
    if engine == "lite" and not on_cpu:
        raise ValueError("the lite engine runs on --device cpu only")

    def load_torch() -> Any:
        # lazy: torch costs seconds at start-up; only the torch engine needs it
        from pipeline.inference.transcriber import Transcriber

        if threads:
            # lazy: torch costs seconds at start-up; only the torch engine needs it
            import torch

            torch.set_num_threads(threads)
        return Transcriber.from_pretrained(model, device=device, beam_size=beam_size, lm=lm, hotwords=hotwords)

    if engine == "torch" or not on_cpu:
        return load_torch()
    # lazy: the lite engine pulls in numpy and onnxruntime's helpers; seqrec --help must not load them
    from pipeline.inference.lite import LiteTranscriber, UnsupportedBundleError

    try:
        return LiteTranscriber.from_pretrained(model, lm=lm, beam_size=beam_size, threads=threads,
                                               hotwords=hotwords)  # fmt: skip
    except UnsupportedBundleError as exc:  # e.g. no graph: torch runs it, with the same result
        if engine == "lite":
            raise
        log.debug("engine auto: the lite engine cannot run %s (%s); using torch", model, exc)
        return load_torch()
