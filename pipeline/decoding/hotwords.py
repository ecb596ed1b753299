"""Hotwords: words and phrases the word-level search should favour, given when transcribing.

A hotword list names words the lexicon lacks (a surname, a product, a term) or words it has
but rarely picks. Each entry is a phrase of one or more words and a weight, the boost in
natural-log units added to a hypothesis' score each time it decodes one of those words (the
same units as the acoustic log-probabilities and the LM's ``word_score``; default
:data:`DEFAULT_WEIGHT`). A negative weight discourages a word instead.

File format (``seqrec transcribe --hotwords FILE``), UTF-8, one entry a line::

    # a comment; blank lines are skipped
    zarnowski            # a surname, at the default weight
    grafana loki: 8      # a phrase: both words get the boost 8
    kubernetes:5.5

The weight follows the last ``:`` of the line (``#`` starts a comment). The Python API takes
the same entries as strings (``hotwords=["zarnowski", "grafana loki:8"]``), as ``(phrase,
weight)`` pairs, or as :class:`Hotword` objects.

How the search uses them (:class:`pipeline.decoding.flashlight.FlashlightSearch`): a word
outside the lexicon is added, spelt letter by letter in the model's tokens; the LM does not
know it, so it scores as the rarest word the LM knows (:func:`oov_floor`), context-free, plus
its boost. A listed word inside the lexicon keeps its LM score, plus its boost, in every
context. The boost also raises the word's score in the lexicon trie, so the beam looks ahead
to it from its first letters. A phrase boosts each of its words wherever it occurs, not only
next to the others: list distinctive words, not "the" (docs/design.md, "Hotwords").

Errors: a line that cannot be read (a weight that is not a number, or is out of range; no
word) raises :class:`HotwordError` naming the file and line. A word the model cannot spell
(a character outside its tokens: a digit, a hyphen, an accent) is a warning naming the line,
and its entry is skipped; if no entry is left, that is an error. The file is read within the
run's limits (a regular file, ``max_line_bytes`` a line, ``max_lm_bytes`` in all,
``max_lexicon_words`` lines; the lexicon plus the words hotwords add, ``max_lexicon_words``).
Torch-free, and flashlight-free until :func:`boosted_lm` is called.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError, SeqrecError, shown
from pipeline.limits import LimitError, bounded_lines, check_regular_file, current_limits
from pipeline.tokenizer import CharTokenizer

log = logging.getLogger(__name__)

#: The boost of an entry without a weight (natural-log units; tuned in docs/results.md, "Hotwords").
DEFAULT_WEIGHT = 10.0
#: Weights outside ``[-MAX_WEIGHT, MAX_WEIGHT]`` are refused (a larger one overrides any audio).
MAX_WEIGHT = 100.0
#: LM scores at or below this are KenLM's stand-ins for an impossible word, not real words.
_IMPOSSIBLE = -99.0


class HotwordError(SeqrecError, ValueError):
    """A hotword list cannot be used (the message names the file and line, or the entry)."""


@dataclass(frozen=True)
class Hotword:
    """One entry: its words, its boost, and where it came from (``file:line`` or ``hotwords[i]``)."""

    words: tuple[str, ...]
    weight: float = DEFAULT_WEIGHT
    where: str = "hotwords"


def parse_hotword(text: str, where: str) -> Hotword | None:
    """One line of a hotword list -> its entry, or None for a blank or comment line.

    Raises:
        HotwordError: the weight is not a finite number within :data:`MAX_WEIGHT`, or the line
            has a weight but no word.
    """
    text = text.split("#", 1)[0].strip()
    if not text:
        return None
    phrase, sep, weight_text = text.rpartition(":")
    if not sep:
        phrase, weight = text, DEFAULT_WEIGHT
    else:
        try:
            weight = float(weight_text)
        except ValueError:
            raise HotwordError(f"{where}: the weight {shown(weight_text.strip(), 40)} is not a number") from None
        if not math.isfinite(weight) or abs(weight) > MAX_WEIGHT:
            raise HotwordError(f"{where}: the weight {weight_text.strip()} is outside -{MAX_WEIGHT:g}..{MAX_WEIGHT:g}")
    words = tuple(phrase.split())
    if not words:
        raise HotwordError(f"{where}: a weight without a word or phrase")
    return Hotword(words, weight, where)


def read_hotwords(path: str | Path) -> list[Hotword]:
    """The entries of a hotword file (format in the module docstring), within the run's limits.

    Raises:
        HotwordError: the file is missing, not a regular file, not UTF-8, or has a bad line.
        LimitError: the file is past ``max_line_bytes``, ``max_lm_bytes`` or ``max_lexicon_words``.
    """
    path = Path(path)
    try:
        check_regular_file(path, "hotwords file")
    except InputError as exc:
        raise HotwordError(str(exc)) from None
    out: list[Hotword] = []
    try:
        with open(path, "rb") as fh:
            lines = bounded_lines(fh, path, "hotwords file", total="max_lm_bytes", count="max_lexicon_words")
            for lineno, line in enumerate(lines, 1):
                entry = parse_hotword(line, f"{path}:{lineno}")
                if entry is not None:
                    out.append(entry)
    except UnicodeDecodeError as exc:
        raise HotwordError(f"{path}: the hotwords file is not UTF-8 text") from exc
    except OSError as exc:
        raise HotwordError(f"{path}: cannot read the hotwords file: {exc.strerror or exc}") from exc
    return out


def as_hotwords(items: Iterable[Any] | Path | None) -> list[Hotword]:
    """The API's ``hotwords=`` argument -> entries.

    Args:
        items: None, a :class:`~pathlib.Path` of a hotword file, or an iterable of strings
            (a file's lines: ``"phrase"`` or ``"phrase:weight"``), ``(phrase, weight)`` pairs
            and :class:`Hotword` objects.

    Raises:
        HotwordError: an entry is malformed (the message names ``hotwords[i]``).
        TypeError: ``items`` is a single string (a list of phrases was meant) or holds
            something else.
        LimitError: more than ``max_lexicon_words`` entries.
    """
    if items is None:
        return []
    if isinstance(items, Path):
        return read_hotwords(items)
    if isinstance(items, (str, bytes)):
        raise TypeError("hotwords must be a list of words or phrases (or the Path of a hotwords file), not one string")
    limit = current_limits().max_lexicon_words
    out: list[Hotword] = []
    for i, item in enumerate(items):
        where = f"hotwords[{i}]"
        if i >= limit:
            raise LimitError("hotwords", "more entries than allowed", "max_lexicon_words", limit)
        if isinstance(item, Hotword):
            entry: Hotword | None = item
        elif isinstance(item, str):
            entry = parse_hotword(item, where)
        elif isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str):
            weight = item[1]
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise HotwordError(f"{where}: the weight {shown(weight, 40)} is not a number")
            entry = parse_hotword(f"{item[0].replace('#', ' ')}:{float(weight)!r}", where)
        else:
            raise TypeError(f"{where}: expected a string, a (phrase, weight) pair or a Hotword, got {shown(item, 40)}")
        if entry is not None:
            out.append(entry)
    return out


def hotword_boosts(entries: Iterable[Hotword], tokenizer: CharTokenizer) -> dict[str, float]:
    """Word -> boost, each word cased as the model spells (lower case for the usual tokens).

    A word listed more than once keeps its largest weight. An entry with a word the model
    cannot spell is skipped with a warning naming it.

    Raises:
        HotwordError: there were entries, and none of them can be spelt.
    """
    tokens = tokenizer.tokens
    letters = set(tokens) - {tokens[tokenizer.blank_id], tokens[tokenizer.space_id]}
    lower = not any(t.isupper() for t in tokens[1:])
    boosts: dict[str, float] = {}
    seen = 0
    for entry in entries:
        seen += 1
        words = [w.lower() if lower else w for w in entry.words]
        bad = sorted({ch for w in words for ch in w} - letters)
        if bad:
            log.warning("%s: skipped %r: the model cannot spell %s", entry.where, " ".join(entry.words),
                        " ".join(repr(ch) for ch in bad[:5]))  # fmt: skip
            continue
        for word in words:
            boosts[word] = max(boosts.get(word, -math.inf), entry.weight)
    if seen and not boosts:
        raise HotwordError(f"{entry.where.rsplit(':', 1)[0]}: no hotword can be spelt with the model's tokens")
    return boosts


def oov_floor(unigram: np.ndarray) -> float:
    """The LM score of a word the LM lacks: its rarest known word's unigram score (log10).

    Scores at or below -99 (KenLM's stand-in for a missing ``<unk>``, ``<s>``) are left out;
    with none left, -10.
    """
    real = unigram[unigram > _IMPOSSIBLE]
    return float(real.min()) if real.size else -10.0


_BOOSTED_LM: Any = None


def boosted_lm(base: Any, boosts: dict[int, float], replaced: dict[int, float]) -> Any:
    """A flashlight LM that adds a per-word bonus to ``base``'s scores (all in its log10 units).

    Args:
        base: The KenLM (any flashlight LM).
        boosts: Word index -> added to the base score whenever that word is scored.
        replaced: Word index -> its whole score, in place of the base's (words the base does
            not know, whose base score is its unknown word's); their state stays the base's.

    The wrapper is a Python subclass of flashlight's ``LM``, so each word the decoder scores
    costs one Python call (a few microseconds; docs/results.md, "Hotwords"). The caller keeps
    it referenced for as long as a decoder uses it.
    """
    global _BOOSTED_LM
    if _BOOSTED_LM is None:
        # lazy: flashlight-text only when hotwords boost an LM
        from flashlight.lib.text.decoder import LM

        class BoostedLM(LM):
            def __init__(self, base: Any, boosts: dict[int, float], replaced: dict[int, float]) -> None:
                super().__init__()
                self.base, self.boosts, self.replaced = base, boosts, replaced
                self._score = base.score

            def start(self, start_with_nothing: bool) -> Any:
                return self.base.start(start_with_nothing)

            def score(self, state: Any, index: int) -> tuple[Any, float]:
                out, value = self._score(state, index)
                if index in self.boosts:
                    value = self.replaced.get(index, value) + self.boosts[index]
                return out, value

            def finish(self, state: Any) -> tuple[Any, float]:
                return self.base.finish(state)

        _BOOSTED_LM = BoostedLM
    return _BOOSTED_LM(base, boosts, replaced)
