"""CTC beam search through torchaudio's flashlight-text decoder: lexicon-free, or with a
lexicon and a word n-gram LM (KenLM, loaded from ARPA or KenLM binary).

Flashlight wants a blank token and a silence (word-boundary) token. Our blank keeps its name;
our space is renamed to the silence token (``"|"``) in the list handed to flashlight, so the
decoder's ids are our ids and a token-level KenLM sees the usual ``|`` word boundary.

Flashlight pads every path with a silence at virtual frames -1 and T; those sentinels are
dropped, so a leading or trailing space never appears in the result.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pipeline.decoding.greedy import check_batch
from pipeline.decoding.types import CTCHypothesis

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silences native code writing to file descriptor 2 (KenLM's progress bars)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreter): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class BeamSearchDecoder:
    """CTC beam search over our token list, lexicon-free or word-level.

    Without ``lexicon`` the search is over characters (``lm``, if given, is a token-level
    KenLM). With ``lexicon`` (a file from :mod:`pipeline.decoding.lexicon`) every hypothesis is
    a sequence of its words, scored by the word-level ``lm`` (shallow fusion:
    ``acoustic + lm_weight * lm + word_score * words``); its spelling units let unlisted words
    through at their own LM cost.

    The flashlight decoder is built once here (it holds native state) and reused by every call.
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
        lexicon: Optional path to a lexicon file (word-level decoding); needs ``lm``.
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
        lexicon: str | Path | None = None,
        unk_score: float = float("-inf"),
        beam_size_token: int | None = None,
    ) -> None:
        from torchaudio.models.decoder import ctc_decoder

        tokens = list(tokens)
        if blank not in tokens:
            raise ValueError(f"blank token {blank!r} is not in the token list")
        if space not in tokens:
            raise ValueError(f"space token {space!r} is not in the token list")
        if len(set(tokens)) != len(tokens):
            raise ValueError("token list has duplicates")
        if beam_size < 1 or nbest < 1:
            raise ValueError(f"beam_size ({beam_size}) and nbest ({nbest}) must be >= 1")
        if lm is not None and not Path(lm).is_file():
            raise FileNotFoundError(f"{lm}: KenLM model file not found")
        if lexicon is not None and not Path(lexicon).is_file():
            raise FileNotFoundError(f"{lexicon}: lexicon file not found")
        if lexicon is not None and lm is None:
            raise ValueError("a lexicon needs a word-level lm")

        self.tokens = tokens
        self.blank_id = tokens.index(blank)
        self.space_id = tokens.index(space)
        self.beam_size = beam_size
        self.nbest = nbest
        self.word_level = lexicon is not None

        sil = "|"
        while sil in tokens:
            sil += "|"
        if lexicon is not None and sil != "|":
            raise ValueError(
                "word-level decoding needs a token list without '|' (the lexicon's word boundary)"
            )
        fl_tokens = [sil if i == self.space_id else tok for i, tok in enumerate(tokens)]
        with quiet_stderr():  # KenLM prints loading progress bars on stderr
            self._decoder: Any = ctc_decoder(
                lexicon=None if lexicon is None else str(lexicon),
                tokens=fl_tokens,
                lm=None if lm is None else str(lm),
                nbest=nbest,
                beam_size=beam_size,
                beam_size_token=beam_size_token,
                beam_threshold=beam_threshold,
                lm_weight=lm_weight,
                word_score=word_score,
                sil_score=sil_score,
                log_add=log_add,
                blank_token=blank,
                sil_token=sil,
                unk_score=unk_score,
            )
        logger.debug(
            "built CTC beam decoder: V=%d beam=%d threshold=%.1f lm=%s lexicon=%s",
            len(tokens),
            beam_size,
            beam_threshold,
            lm,
            lexicon,
        )

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
        batch, num_frames, _ = log_probs.shape
        if num_frames == 0:
            return [[CTCHypothesis()] for _ in range(batch)]
        emissions = log_probs.detach().to("cpu", torch.float32).contiguous()
        if self.word_level:
            emissions, dec_lengths = self._close_last_word(emissions, lengths)
        else:
            dec_lengths = lengths
        results = self._decoder(emissions, dec_lengths.to(torch.int32))
        out = []
        for b, nbest in enumerate(results):
            length = int(lengths[b])
            hyps = [self._convert(h, length) for h in nbest]
            out.append(hyps or [CTCHypothesis()])
        return out

    def _close_last_word(self, emissions: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Appends one frame that is certainly a space after each sequence's last frame.

        Lexicon spellings end with the word boundary, and a word counts only once it is
        complete; CTC models emit no space after the last word, so without this frame the
        decoder would drop it. The frame lies past ``length`` and is dropped from the result.
        """
        batch, num_frames, vocab = emissions.shape
        out = torch.full((batch, num_frames + 1, vocab), -1e4)
        out[:, :num_frames] = emissions
        rows = torch.arange(batch)
        out[rows, lengths.long()] = -1e4
        out[rows, lengths.long(), self.space_id] = 0.0
        return out, lengths + 1

    def _convert(self, hyp: Any, length: int) -> CTCHypothesis:
        """Drops flashlight's sentinel silences and shifts its timesteps to our frames."""
        token_ids: list[int] = []
        frames: list[int] = []
        for tok, step in zip(hyp.tokens.tolist(), hyp.timesteps.tolist(), strict=True):
            # Timestep 0 is the start sentinel and length + 1 the end sentinel; a real
            # space on the first or last frame merges into them, which loses nothing.
            if step <= 0 or step > length:
                continue
            token_ids.append(int(tok))
            frames.append(int(step) - 1)
        return CTCHypothesis(token_ids=token_ids, frames=frames, score=float(hyp.score))
