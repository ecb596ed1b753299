"""seqrec's library: models, training, decoding, inference and the CLI.

``load_transcriber`` (the entry point: it picks the engine), ``Transcriber`` (torch),
``LiteTranscriber`` (torch-free) and ``ClipLabeler`` are imported lazily so that
``import pipeline`` (and ``seqrec --help``) stays fast and has no side effects.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ClipLabeler", "LiteTranscriber", "Transcriber", "load_transcriber"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "Transcriber":
        # lazy: import pipeline stays light; the engines load on first use
        from pipeline.inference.transcriber import Transcriber

        return Transcriber
    if name == "LiteTranscriber":
        # lazy: import pipeline stays light; the engines load on first use
        from pipeline.inference.lite import LiteTranscriber

        return LiteTranscriber
    if name == "load_transcriber":
        # lazy: import pipeline stays light; the engines load on first use
        from pipeline.inference.engines import load_transcriber

        return load_transcriber
    if name == "ClipLabeler":
        # lazy: import pipeline stays light; the engines load on first use
        from pipeline.inference.labeler import ClipLabeler

        return ClipLabeler
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
