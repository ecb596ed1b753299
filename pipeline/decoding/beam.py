"""CTC beam search for torch tensors: lexicon-free, or with a lexicon and a word n-gram LM.

A thin adapter over :class:`pipeline.decoding.flashlight.FlashlightSearch` (flashlight-text
directly, in numpy), which the torch-free engine uses too: the same search, the same results.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from pipeline.decoding.flashlight import FlashlightSearch, SearchResult, quiet_stderr  # noqa: F401
from pipeline.decoding.greedy import check_batch
from pipeline.decoding.lexicon import read_lexicon
from pipeline.decoding.types import CTCHypothesis
from pipeline.tokenizer import CharTokenizer

logger = logging.getLogger(__name__)


class BeamSearchDecoder:
    """CTC beam search over our token list, lexicon-free or word-level.

    Without ``lexicon`` the search is over characters (``lm``, if given, is a token-level
    KenLM). With ``lexicon`` (a file from :mod:`pipeline.decoding.lexicon`) every hypothesis is
    a sequence of its words, scored by the word-level ``lm`` (shallow fusion:
    ``acoustic + lm_weight * lm + word_score * words``); its spelling units let unlisted words
    through at their own LM cost.

    The flashlight search is built once here (it holds native state) and reused by every call.
    One instance must not be used from several threads at once.

    Args:
        tokens: Our token strings indexed by id (e.g. ``CharTokenizer.to_list()``).
        beam_size: Hypotheses kept after each frame.
        beam_threshold: Hypotheses scoring this far below the best are pruned.
        blank: Our blank token string.
        space: Our word-boundary token string.
        lm: Optional path to a token-level KenLM model (its vocabulary uses ``|`` for the
            space); needs flashlight-text built with KenLM. None decodes without an LM.
        lm_weight: LM weight (used only with ``lm``).
        word_score: Score added at each word boundary (used only with ``lm``).
        sil_score: Score added for each silence (space) token.
        log_add: Merge paths that reach the same prefix by log-sum-exp (true CTC prefix
            probabilities) instead of keeping only the best one (Viterbi).
        nbest: Hypotheses returned per sequence by ``decode_nbest``.
        lexicon: Optional lexicon (word-level decoding; needs ``lm``): a file of
            :mod:`pipeline.decoding.lexicon`, or what :func:`~pipeline.decoding.lexicon.read_lexicon`
            returns (word -> spelling).
        beam_size_token: Tokens tried per frame, the likeliest first (None: all of them).
        unk_score: Score of flashlight's own unknown-word path (a prefix of a listed word
            ending a word); -inf (default) turns it off.

    Raises:
        ValueError: ``blank`` or ``space`` is not in ``tokens``, or a setting is out of range.
        FileNotFoundError: ``lm`` or ``lexicon`` does not exist.
    """

    def __init__(
        self,
        tokens: Sequence[str],
        *,
        beam_size: int = 8,
        beam_threshold: float = 25.0,
        blank: str = "<blank>",
        space: str = " ",
        lm: str | Path | None = None,
        lm_weight: float = 2.0,
        word_score: float = 0.0,
        sil_score: float = 0.0,
        log_add: bool = True,
        nbest: int = 1,
        lexicon: str | Path | dict[str, list[str]] | None = None,
        unk_score: float = float("-inf"),
        beam_size_token: int | None = None,
    ) -> None:
        if lm is not None and not Path(lm).is_file():
            raise FileNotFoundError(f"{lm}: KenLM model file not found")
        if isinstance(lexicon, (str, Path)):
            if not Path(lexicon).is_file():
                raise FileNotFoundError(f"{lexicon}: lexicon file not found")
            lexicon = read_lexicon(lexicon, CharTokenizer.from_list(list(tokens)))
        self.tokens = list(tokens)
        self.beam_size = beam_size
        self._search = FlashlightSearch(
            self.tokens, blank=blank, space=space, beam_size=beam_size, beam_size_token=beam_size_token,
            beam_threshold=beam_threshold, lm=lm, lexicon=lexicon, lm_weight=lm_weight, word_score=word_score,
            sil_score=sil_score, unk_score=unk_score, log_add=log_add, nbest=nbest,
        )  # fmt: skip
        self.blank_id, self.space_id = self._search.blank_id, self._search.space_id
        self.nbest, self.word_level = nbest, self._search.word_level
        logger.debug("built CTC beam decoder: V=%d beam=%d threshold=%.1f lm=%s lexicon=%s",
                     len(self.tokens), beam_size, beam_threshold, lm, lexicon is not None)  # fmt: skip

    @classmethod
    def from_search(cls, search: FlashlightSearch) -> BeamSearchDecoder:
        """Wraps a search built elsewhere (e.g. :meth:`pipeline.decoding.word_lm.WordLM.search`)."""
        self = cls.__new__(cls)
        self._search, self.tokens = search, search.tokens
        self.blank_id, self.space_id = search.blank_id, search.space_id
        self.nbest, self.word_level = search.nbest, search.word_level
        self.beam_size = search.beam_size
        return self

    def decode(self, log_probs: Tensor, lengths: Tensor | None = None) -> list[CTCHypothesis]:
        """Best hypothesis per sequence.

        Args:
            log_probs: (B, T, V) log-probabilities; moved to CPU float32 if needed.
            lengths: (B,) valid frames per sequence (None: all T).

        Returns:
            B hypotheses with our token ids, start frames and the decoder's score.
        """
        return [nbest[0] for nbest in self.decode_nbest(log_probs, lengths)]

    def decode_nbest(
        self, log_probs: Tensor, lengths: Tensor | None = None
    ) -> list[list[CTCHypothesis]]:
        """Up to ``nbest`` hypotheses per sequence, best first (shapes as in ``decode``)."""
        lengths = check_batch(log_probs, lengths)
        if log_probs.shape[-1] != len(self.tokens):
            raise ValueError(
                f"log_probs has V={log_probs.shape[-1]}, decoder has {len(self.tokens)} tokens"
            )
        emissions = log_probs.detach().to("cpu", torch.float32).numpy()
        return [
            [_hypothesis(r) for r in self._search.search(emissions[b, : int(lengths[b])])]
            for b in range(emissions.shape[0])
        ]


def _hypothesis(result: SearchResult) -> CTCHypothesis:
    return CTCHypothesis(token_ids=result.token_ids, frames=result.frames, score=result.score)
