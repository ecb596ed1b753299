"""CTC beam search on flashlight-text directly, in numpy: no torch, no torchaudio.

Both engines decode through :class:`FlashlightSearch` (the torch engine through
:class:`pipeline.decoding.beam.BeamSearchDecoder`, which hands it numpy arrays). It is either
lexicon-free over characters (optionally with a token-level KenLM) or word-level: a lexicon
trie of words spelt in our tokens, scored by a word n-gram KenLM (shallow fusion:
``acoustic + lm_weight * lm + word_score * words``).

Flashlight wants a blank token and a silence (word-boundary) token. Our blank keeps its name;
our space is renamed to the silence token (``"|"``) in the list handed to flashlight, so the
decoder's ids are our ids and a token-level KenLM sees the usual ``|`` word boundary.
Flashlight pads every path with a silence at virtual frames -1 and T; those sentinels are
dropped, so a leading or trailing space never appears in the result.

The word-level trie is built here from the words' spellings as token ids, each weighted by
its unigram LM score for smearing. Mapping 43,600 spellings to ids and scoring them costs
about 0.2 s; a bundle's compiled lexicon (:mod:`pipeline.decoding.compiled_lexicon`) holds
both ready, leaving the insertions (about 0.15 s). :attr:`FlashlightSearch.lexicon` is the
compiled form of whatever lexicon it was given, unigram scores included.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.decoding.compiled_lexicon import CompiledLexicon
from pipeline.decoding.hotwords import boosted_lm, oov_floor

log = logging.getLogger(__name__)

#: flashlight's name for a word outside its dictionary.
UNK_WORD = "<unk>"


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


@dataclass
class SearchResult:
    """One hypothesis: our token ids, the frame of each, the total score and the words (word
    level only), best first in a list per sequence."""

    token_ids: list[int]
    frames: list[int]
    score: float
    words: list[str]


class FlashlightSearch:
    """A flashlight-text CTC beam search over our token list.

    Args:
        tokens: Our token strings indexed by id.
        blank, space: Our blank and word-boundary token strings.
        beam_size: Hypotheses kept after each frame.
        beam_size_token: Tokens tried per frame, the likeliest first (None: all).
        beam_threshold: Hypotheses scoring this far below the best are pruned.
        lm: A KenLM model file (ARPA, gzipped ARPA or KenLM binary): word-level with
            ``lexicon``, token-level without. None: no LM (lexicon-free only).
        lexicon: Word -> its spelling, a list of our token strings ending in the word
            boundary (``|`` or our space; see :mod:`pipeline.decoding.lexicon`), or the same
            already compiled (:class:`~pipeline.decoding.compiled_lexicon.CompiledLexicon`),
            or None for lexicon-free search.
        lm_weight, word_score, sil_score, unk_score: Scores of shallow fusion (``unk_score``
            -inf turns flashlight's unknown-word path off).
        hotwords: Word -> boost (natural-log units, added to a hypothesis' score each time it
            decodes the word; word-level only, ``lm_weight`` > 0). A word outside ``lexicon``
            is added, spelt letter by letter, and scores as the LM's rarest word plus its
            boost (:mod:`pipeline.decoding.hotwords`).
        log_add: Merge paths that reach the same prefix by log-sum-exp.
        nbest: Hypotheses returned per sequence.

    Raises:
        ValueError: a token is missing or duplicated, or a setting is out of range.
        RuntimeError: KenLM cannot load ``lm``.
    """

    def __init__(
        self,
        tokens: Sequence[str],
        *,
        blank: str = "<blank>",
        space: str = " ",
        beam_size: int = 8,
        beam_size_token: int | None = None,
        beam_threshold: float = 25.0,
        lm: str | Path | None = None,
        lexicon: dict[str, list[str]] | CompiledLexicon | None = None,
        lm_weight: float = 2.0,
        word_score: float = 0.0,
        sil_score: float = 0.0,
        unk_score: float = float("-inf"),
        log_add: bool = True,
        nbest: int = 1,
        hotwords: dict[str, float] | None = None,
    ) -> None:
        # lazy: flashlight-text only when a search is built (greedy decoding does without)
        from flashlight.lib.text import decoder as fl
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import Dictionary

        tokens = list(tokens)
        for name, tok in (("blank", blank), ("space", space)):
            if tok not in tokens:
                raise ValueError(f"{name} token {tok!r} is not in the token list")
        if len(set(tokens)) != len(tokens):
            raise ValueError("token list has duplicates")
        if beam_size < 1 or nbest < 1:
            raise ValueError(f"beam_size ({beam_size}) and nbest ({nbest}) must be >= 1")
        if lexicon is not None and lm is None:
            raise ValueError("a lexicon needs a word-level lm")
        if hotwords and (lexicon is None or not lm_weight > 0):
            raise ValueError("hotwords need a word-level search (a lexicon and its lm) with lm_weight > 0")
        self.tokens = tokens
        self.blank_id, self.space_id = tokens.index(blank), tokens.index(space)
        self.nbest, self.beam_size = nbest, beam_size
        self.word_level = lexicon is not None
        sil = "|"
        while sil in tokens:
            sil += "|"
        if self.word_level and sil != "|":
            raise ValueError("word-level decoding needs a token list without '|' (the lexicon's word boundary)")
        token_dict = Dictionary([sil if i == self.space_id else t for i, t in enumerate(tokens)])
        per_frame = beam_size_token or len(tokens)
        common = {"beam_size": beam_size, "beam_size_token": per_frame, "beam_threshold": beam_threshold,
                  "lm_weight": lm_weight, "sil_score": sil_score, "log_add": log_add,
                  "criterion_type": fl.CriterionType.CTC}  # fmt: skip
        self.words: list[str] = []
        with quiet_stderr():  # KenLM prints loading progress bars on stderr
            if self.word_level:
                self.lexicon = lexicon if isinstance(lexicon, CompiledLexicon) else self._compile(lexicon)
                added = self._added_words(hotwords or {})
                self.words = [*self.lexicon.words, *added, UNK_WORD]
                word_dict = Dictionary(self.words)
                word_dict.set_default_index(len(self.words) - 1)
                self._lm = KenLM(str(lm), word_dict)
                if self.lexicon.unigram is None:
                    self.lexicon.unigram = self._unigram_scores(len(self.lexicon.words))
                #: The LM the decoder calls: the KenLM, or with hotwords a wrapper adding their boosts.
                self._decoder_lm, trie_words = self._lm, self.lexicon
                if hotwords:
                    self._decoder_lm, trie_words = self._boost(hotwords, added, lm_weight)
                trie = self._trie(fl, trie_words)
                options = fl.LexiconDecoderOptions(word_score=word_score, unk_score=unk_score, **common)
                self._decoder: Any = fl.LexiconDecoder(
                    options, trie, self._decoder_lm, self.space_id, self.blank_id, len(self.words) - 1, [], False
                )
            else:
                if lm is not None:  # a token-level LM over our tokens (and an unknown word)
                    lm_dict = Dictionary([*(token_dict.get_entry(i) for i in range(len(tokens))), UNK_WORD])
                    self._lm = KenLM(str(lm), lm_dict)
                else:
                    self._lm = fl.ZeroLM()
                options = fl.LexiconFreeDecoderOptions(**common)
                self._decoder = fl.LexiconFreeDecoder(options, self._lm, self.space_id, self.blank_id, [])

    def _compile(self, lexicon: dict[str, list[str]]) -> CompiledLexicon:
        """Word -> spelling (token strings) -> the words and their spellings as our token ids."""
        ids = {("|" if i == self.space_id else tok): i for i, tok in enumerate(self.tokens)}
        ids[self.tokens[self.space_id]] = self.space_id
        return CompiledLexicon(list(lexicon), [[ids[t] for t in spelling] for spelling in lexicon.values()])

    def _unigram_scores(self, count: int) -> np.ndarray:
        """(count,) float32: the LM's score of word ids 0..count-1 from the start state."""
        start, score = self._lm.start(False), self._lm.score
        return np.array([score(start, index)[1] for index in range(count)], np.float32)

    def _added_words(self, hotwords: dict[str, float]) -> dict[str, list[int]]:
        """The hotwords outside the lexicon -> their spellings in our token ids (letters, space)."""
        if not hotwords:
            return {}
        known = set(self.lexicon.words)
        ids = {tok: i for i, tok in enumerate(self.tokens) if i not in (self.blank_id, self.space_id)}
        out: dict[str, list[int]] = {}
        for word in hotwords:
            if word in known:
                continue
            if not word or any(ch not in ids for ch in word):
                raise ValueError(f"hotword {word!r} cannot be spelt with the model's tokens")
            out[word] = [*(ids[ch] for ch in word), self.space_id]
        return out

    def _boost(self, hotwords: dict[str, float], added: dict[str, list[int]], lm_weight: float) -> tuple[Any, CompiledLexicon]:
        """The LM wrapper that adds the hotwords' boosts, and the trie's words with them.

        Boosts are in the decoder's units; the LM's are scaled by ``lm_weight``, so a boost
        enters the LM as ``boost / lm_weight``, in the wrapper and in the trie's smearing.
        """
        base = len(self.lexicon.words)
        index = {w: i for i, w in enumerate(self.lexicon.words)}
        index.update((w, base + k) for k, w in enumerate(added))
        boosts = {index[w]: float(b) / lm_weight for w, b in hotwords.items()}
        floor = oov_floor(self.lexicon.unigram)
        replaced = {base + k: floor for k in range(len(added))}
        unigram = np.concatenate([self.lexicon.unigram, np.full(len(added), floor, np.float32)])
        for i, bonus in boosts.items():
            unigram[i] += bonus
        trie_words = CompiledLexicon([*self.lexicon.words, *added], [*self.lexicon.spellings, *added.values()], unigram)
        return boosted_lm(self._lm, boosts, replaced), trie_words

    def _trie(self, fl: Any, lexicon: CompiledLexicon) -> Any:
        """The lexicon's spellings in a trie, each word weighted by its unigram score, smeared."""
        trie = fl.Trie(len(self.tokens), self.space_id)
        insert = trie.insert
        for index, (spelling, unigram) in enumerate(zip(lexicon.spellings, lexicon.unigram.tolist(), strict=True)):
            insert(spelling, index, unigram)
        trie.smear(fl.SmearingMode.MAX)
        return trie

    def search(self, emissions: np.ndarray) -> list[SearchResult]:
        """(T, V) log-probabilities of one sequence -> up to ``nbest`` hypotheses, best first."""
        num_frames, vocab = emissions.shape
        if vocab != len(self.tokens):
            raise ValueError(f"emissions have V={vocab}, the decoder has {len(self.tokens)} tokens")
        if num_frames == 0:
            return [SearchResult([], [], 0.0, [])]
        x = np.ascontiguousarray(emissions, dtype=np.float32)
        if self.word_level:
            x = self._close_last_word(x)
        results = self._decoder.decode(x.ctypes.data, x.shape[0], vocab)[: self.nbest]
        return [self._convert(r, num_frames) for r in results] or [SearchResult([], [], 0.0, [])]

    def _close_last_word(self, emissions: np.ndarray) -> np.ndarray:
        """Appends one frame that is certainly a space after the last frame.

        Lexicon spellings end with the word boundary, and a word counts only once it is
        complete; CTC models emit no space after the last word, so without this frame the
        decoder would drop it. The frame lies past the sequence and is dropped from the result.
        """
        extra = np.full((1, emissions.shape[1]), -1e4, np.float32)
        extra[0, self.space_id] = 0.0
        return np.concatenate([emissions, extra])

    def _convert(self, result: Any, length: int) -> SearchResult:
        """Collapses flashlight's per-frame path to CTC tokens with their first frames, dropping
        the sentinel silences (virtual frames -1 and ``length``)."""
        path = list(result.tokens)  # one entry per virtual frame, sentinels included
        token_ids: list[int] = []
        frames: list[int] = []
        for step, tok in enumerate(path):
            if tok == self.blank_id or (step > 0 and tok == path[step - 1]):
                continue
            if step <= 0 or step > length:  # the sentinels; a real space there merges into them
                continue
            token_ids.append(int(tok))
            frames.append(step - 1)
        words = [self.words[w] for w in result.words if w >= 0] if self.word_level else []
        return SearchResult(token_ids, frames, float(result.score), words)
