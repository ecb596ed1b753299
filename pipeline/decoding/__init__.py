"""CTC decoding: greedy and beam search, word timestamps and forced alignment."""

from pipeline.decoding.beam import BeamSearchDecoder
from pipeline.decoding.greedy import greedy_decode
from pipeline.decoding.timestamps import forced_align_words, word_timestamps
from pipeline.decoding.types import CTCHypothesis

__all__ = [
    "BeamSearchDecoder",
    "CTCHypothesis",
    "forced_align_words",
    "greedy_decode",
    "word_timestamps",
]
