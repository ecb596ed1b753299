"""Extra English text for the speech recipe's word LM only, never for the speech corpus.

The corpus draws its sentences from :data:`data_prep.corpora.text_sources.TEXT_SOURCES`
(``available_sources()`` lists every installed one), so a source registered there would change
every corpus built after it was installed. The sources here live in a registry of their own,
:data:`LM_TEXT_SOURCES`, which the corpus never reads; the recipe's ``lm.extra_sources`` names
them (``recipes/speech_ctc/lm.py``), and the LM removes every dev/test sentence and every
sentence of the held-out text sources (fortunes) from their text.

``ding``  (``trans-de-en``)  the English example sentences of Ding, the German-English dictionary
          of TU Chemnitz (GPL-2+): short, modern, everyday and administrative English ("Please
          don't trouble.", "Most schools are oversubscribed.").

Sentences go through the corpus' own filter, :func:`~data_prep.corpora.text_sources.clean_sentence`
(WordNet lexicon included), so they are normalised the same way as the transcripts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from data_prep.corpora import text_sources as ts
from data_prep.corpora.text_sources import MAX_WORDS, MIN_WORDS, TextSource, TextSourceError

# --- Ding: "German | German example :: English | English example" per line; the " | "-separated
# fields of both sides correspond; ";" separates alternatives inside a field; {..} marks word
# class, [..] register or region, <..> a separable particle's place, (..) optional words or a gloss.

_DING_ANNOT_RE = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|<[^<>]*>|\([^()]*\)")
_DING_PLACEHOLDER_RE = re.compile(r"\b(?:sb|sth|smb|smth|etw|jdn|jdm|jds|jd)\b", re.IGNORECASE)
_DING_SENTENCE_RE = re.compile(r"^[A-Z].*[.!?][\"'\u2019\u201d]?$")


def ding_sentences(text: str) -> Iterator[str]:
    """The English example sentences of Ding dictionary text (raw, before cleaning).

    Keeps the alternatives of the English side that read as a sentence (a capital first, ``.``,
    ``!`` or ``?`` last), with the annotations in braces, brackets, angle brackets and
    parentheses removed; drops those with a placeholder (``sb``, ``sth``, ``etw``, ``jdn``, ...),
    which are phrase patterns, not sentences.
    """
    for line in text.splitlines():
        if line.startswith("#") or " :: " not in line:
            continue
        english = line.split(" :: ", 1)[1]
        for field in english.split("|"):
            for alt in field.split(";"):
                if _DING_PLACEHOLDER_RE.search(alt):
                    continue
                alt = " ".join(_DING_ANNOT_RE.sub(" ", alt).split())
                alt = re.sub(r"\s+(?=[.,!?;:])", "", alt)  # "Thanks (a lot) ." -> "Thanks."
                if _DING_SENTENCE_RE.match(alt):
                    yield alt


def _parse_ding(paths: Sequence[str]) -> Iterator[str]:
    for path in paths:
        yield from ding_sentences(ts._read_text(path))


LM_TEXT_SOURCES: dict[str, TextSource] = {
    "ding": TextSource(
        name="ding",
        packages=("trans-de-en",),
        root="/usr/share/trans",
        patterns=("de-en",),
        parser=_parse_ding,
        licence="GPL-2+ (Ding German-English dictionary, Frank Richter, TU Chemnitz)",
    ),
}
"""Registry of LM-only text: name -> where its files are and how to parse them."""


def _source_files(name: str) -> tuple[TextSource, list[str]]:
    if name not in LM_TEXT_SOURCES:
        raise TextSourceError(f"unknown LM text source {name!r}; known: {sorted(LM_TEXT_SOURCES)}")
    spec = LM_TEXT_SOURCES[name]
    files = spec.files()
    if not files:
        raise TextSourceError(
            f"LM text source {name!r} is not installed: no files matching {list(spec.patterns)} "
            f"in {spec.root}; install the Debian package(s) with `{spec.install_hint()}`"
        )
    return spec, files


def load_lm_text(name: str, *, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> list[str]:
    """The cleaned, normalised, deduplicated sentences of one LM text source, in file order.

    Raises:
        TextSourceError: unknown source, or its Debian package (or ``wordnet-base``, whose
            lexicon the filter uses) is not installed; the message names the package.
    """
    if not 1 <= min_words <= max_words <= 50:
        raise ValueError(f"need 1 <= min_words <= max_words <= 50, got {min_words}, {max_words}")
    sentences = ts.cleaned_sentences(*_source_files(name), prefix="lm-", code=(__file__,))
    return [s for s in sentences if min_words <= s.count(" ") + 1 <= max_words]
