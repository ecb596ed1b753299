"""One entry point for transcription: :func:`load_transcriber` picks the engine.

Two engines transcribe a speech bundle with the same results:

* ``lite`` (:class:`pipeline.inference.lite.LiteTranscriber`): numpy, onnxruntime and
  flashlight-text, no torch: it starts in a fraction of the time and memory. It reads files of
  up to 60 s, whole.
* ``torch`` (:class:`pipeline.inference.transcriber.Transcriber`): the reference; GPUs, batches,
  and long recordings read block-wise and cut at pauses.

``engine="auto"`` (the default) runs on the lite engine on CPU whenever the bundle has a graph
it can run, and hands a file that turns out longer than 60 s (counted while it is read, not
from its header) to the torch engine, loaded at that moment. A bundle the lite engine cannot
run (no graph) goes to torch. No fallback changes a result: both engines give the same
transcripts, and a file that fails on one fails on the other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.inference.transcription import Transcription

log = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "lite")


class AutoTranscriber:
    """The lite engine, with the torch engine behind it for files longer than it reads.

    Args:
        lite: The torch-free engine.
        load_torch: Builds the torch engine (called once, when a long file first needs it).
    """

    engine = "auto"

    def __init__(self, lite: Any, load_torch: Callable[[], Any]) -> None:
        self.lite, self._load_torch, self._torch = lite, load_torch, None

    @property
    def torch_engine(self) -> Any:
        if self._torch is None:
            self._torch = self._load_torch()
        return self._torch

    def transcribe_iter(self, paths: Any, *, skip_silence: bool = True, raise_errors: bool = False) -> Iterator[Transcription]:
        """Results in input order, each as soon as it is done (see :meth:`LiteTranscriber.transcribe`)."""
        from data_prep.audio import AudioTooLong

        for res in self.lite.transcribe_iter(paths, skip_silence=skip_silence):
            if isinstance(res.exception, AudioTooLong):
                log.debug("%s: longer than the lite engine reads; the torch engine reads it block-wise", res.path)
                res = next(iter(self.torch_engine.transcribe_iter([res.path], skip_silence=skip_silence)))
            if raise_errors and res.exception is not None:
                raise res.exception
            yield res

    def transcribe(self, paths: Any, **options: Any) -> list[Transcription]:
        """The list form of :meth:`transcribe_iter`."""
        return list(self.transcribe_iter(paths, **options))


def load_transcriber(
    model: str | Path | None = None,
    *,
    engine: str = "auto",
    lm: str | Path | None = "auto",
    beam_size: int | None = None,
    device: str = "cpu",
    threads: int | None = None,
) -> Any:
    """A transcriber for a speech bundle (None: the English model shipped with seqrec).

    Args:
        model: The bundle directory.
        engine: ``"auto"`` (see the module docstring), ``"lite"`` or ``"torch"``.
        lm: ``"auto"`` (the bundle's word LM), ``"none"``, or an ARPA/KenLM file.
        beam_size: Beam width (default: the LM's tuned width; greedy without an LM).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (the torch engine's).
        threads: CPU threads of the engine that runs (default: onnxruntime 1, torch its own).

    Returns:
        An object with ``transcribe(paths)`` and ``transcribe_iter(paths)`` giving
        :class:`~pipeline.inference.transcription.Transcription` results, and ``engine``
        (``"lite"``, ``"torch"`` or ``"auto"``).

    Raises:
        ValueError: an unknown engine, or the lite engine asked for on a GPU.
        BundleError: the bundle (or its LM) cannot be used, with one line naming the file.
    """
    from pipeline.pretrained import speech_model_dir

    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")
    model = speech_model_dir(model)
    on_cpu = device.lower() == "cpu"
    if engine == "lite" and not on_cpu:
        raise ValueError("the lite engine runs on --device cpu only")

    def load_torch() -> Any:
        from pipeline.inference.transcriber import Transcriber

        if threads:
            import torch

            torch.set_num_threads(threads)
        return Transcriber.from_pretrained(model, device=device, beam_size=beam_size, lm=lm)

    if engine == "torch" or not on_cpu:
        return load_torch()
    from pipeline.inference.lite import LiteTranscriber, UnsupportedBundleError

    try:
        lite = LiteTranscriber.from_pretrained(model, lm=lm, beam_size=beam_size, threads=threads or 1)
    except UnsupportedBundleError as exc:  # e.g. no graph: torch runs it, with the same result
        if engine == "lite":
            raise
        log.debug("engine auto: the lite engine cannot run %s (%s); using torch", model, exc)
        return load_torch()
    return lite if engine == "lite" else AutoTranscriber(lite, load_torch)
