"""Lexicons for word-level CTC decoding: each word spelt in the model's character tokens.

File format (flashlight's): one word per line, a tab, then its spelling as space-separated
tokens ending with ``|`` (the word boundary, our space), e.g. ``apple\\ta p p l e |``.

*Spelling units* give the decoder an unknown-word path: ``<spell:x>`` is a one-letter "word"
spelt ``x`` without the boundary, so any string of letters can be decoded as a run of them
(``<spell:z> <spell:o> <spell:r> <spell:p>`` then a space reads "zorp"). Each letter costs a
flat log10 probability, written into the LM as a unigram when it is built (outside its
Kneser-Ney distribution: a decoding knob, measured in docs/results.md), so the decoder takes
that path only where no listed word fits the audio. Torch-free.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from pipeline.decoding.ngram import NgramModel
from pipeline.errors import InputError, SeqrecError
from pipeline.io_utils import atomic_write_text
from pipeline.limits import bounded_lines, check_regular_file
from pipeline.tokenizer import CharTokenizer

log = logging.getLogger(__name__)

#: The word-boundary token in lexicon spellings (our space token is renamed to it).
BOUNDARY = "|"
#: Prefix of the spelling units' names.
SPELL_PREFIX = "<spell:"


class LexiconError(SeqrecError, ValueError):
    """A lexicon file cannot be used (the message names the file and the line)."""


def spelling_unit(char: str) -> str:
    """The pseudo-word that spells one character, e.g. ``<spell:q>``."""
    return f"{SPELL_PREFIX}{char}>"


def _characters(tokenizer: CharTokenizer) -> set[str]:
    """The tokens that spell words: all but the blank and the space."""
    return set(tokenizer.tokens) - {tokenizer.tokens[tokenizer.blank_id], tokenizer.tokens[tokenizer.space_id]}


def spell_words(words: Iterable[str], tokenizer: CharTokenizer) -> tuple[dict[str, list[str]], int]:
    """Spells words in the tokenizer's characters.

    Args:
        words: Candidate words (duplicates are merged; the LM's markers are skipped).
        tokenizer: The model's tokenizer; a word with a character outside it is dropped.

    Returns:
        (word -> spelling tokens ending with ``|``, number of words dropped), in first-seen order.
    """
    chars = _characters(tokenizer)
    out: dict[str, list[str]] = {}
    dropped = 0
    for word in words:
        if word in out or word in ("<s>", "</s>", "<unk>") or word.startswith(SPELL_PREFIX):
            continue
        if not word or any(ch not in chars for ch in word):
            dropped += 1
            continue
        out[word] = [*word, BOUNDARY]
    if dropped:
        log.info("lexicon: dropped %d words with characters outside the model's tokens", dropped)
    return out, dropped


def add_spelling_units(
    lexicon: dict[str, list[str]],
    tokenizer: CharTokenizer,
    model: NgramModel | None = None,
    log10_prob: float = -4.0,
) -> dict[str, list[str]]:
    """The lexicon plus one spelling unit per letter token (see the module docstring).

    With ``model``, each unit also becomes one of its unigrams at ``log10_prob`` (changed in
    place), which is what the decoder charges per spelt letter.
    """
    out = dict(lexicon)
    for tok in tokenizer.tokens:
        if tok.isalpha() and len(tok) == 1:
            out[spelling_unit(tok)] = [tok]
            if model is not None:
                model.grams[0][(spelling_unit(tok),)] = (float(log10_prob), 0.0)
    return out


def write_lexicon(path: str | Path, lexicon: dict[str, list[str]]) -> None:
    """Writes ``word<TAB>spelling`` lines (atomically)."""
    atomic_write_text(path, "".join(f"{w}\t{' '.join(sp)}\n" for w, sp in lexicon.items()))


def read_lexicon(path: str | Path, tokenizer: CharTokenizer) -> dict[str, list[str]]:
    """Reads a lexicon file and checks every spelling against the tokenizer.

    Entries whose spelling uses a token the model does not have are dropped and counted in
    the log (another model's lexicon may hold characters this one lacks).

    The file is read within the run's limits (:mod:`pipeline.limits`): it must be a regular
    file; a first pass, which keeps nothing, refuses a file of more than ``max_lexicon_words``
    lines, a line longer than ``max_line_bytes`` or more than ``max_lm_bytes`` in all, so a
    giant lexicon costs no memory before it is refused.

    Raises:
        LexiconError: the file cannot be read, is not UTF-8, has a malformed line or no entry.
        LimitError: the file is past one of the limits (names the file and the limit's flag).
    """
    path = Path(path)
    allowed = _characters(tokenizer) | {BOUNDARY}
    try:
        check_regular_file(path, "lexicon file")
    except InputError as exc:
        raise LexiconError(str(exc)) from None
    out: dict[str, list[str]] = {}
    dropped = 0
    try:
        with open(path, "rb") as fh:  # the first pass: limits only
            for _ in bounded_lines(fh, path, "lexicon", total="max_lm_bytes", count="max_lexicon_words"):
                pass
            fh.seek(0)
            for lineno, line in enumerate(bounded_lines(fh, path, "lexicon", total="max_lm_bytes"), 1):
                if not line.strip():
                    continue
                word, sep, spelling = line.partition("\t")
                tokens = spelling.split()
                if not sep or not word.strip() or not tokens:
                    raise LexiconError(f"{path}: line {lineno}: expected 'word<TAB>t o k e n s |'")
                if any(t not in allowed for t in tokens):
                    dropped += 1
                    continue
                out[word.strip()] = tokens
    except UnicodeDecodeError as exc:
        raise LexiconError(f"{path}: lexicon is not UTF-8 text") from exc
    except OSError as exc:
        raise LexiconError(f"{path}: cannot read lexicon: {exc.strerror or exc}") from exc
    if dropped:
        log.info("%s: dropped %d entries with tokens the model does not have", path, dropped)
    if not out:
        raise LexiconError(f"{path}: lexicon has no usable entry")
    return out
