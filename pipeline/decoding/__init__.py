"""CTC decoding: greedy and beam search, word timestamps and forced alignment.

The names below are imported lazily (on first use), so that importing a torch-free submodule
such as :mod:`pipeline.decoding.greedy` does not load torchaudio through :mod:`.beam`.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "BeamSearchDecoder": "pipeline.decoding.beam",
    "CTCHypothesis": "pipeline.decoding.types",
    "forced_align_words": "pipeline.decoding.timestamps",
    "greedy_decode": "pipeline.decoding.greedy",
    "greedy_path": "pipeline.decoding.greedy",
    "word_timestamps": "pipeline.decoding.timestamps",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
