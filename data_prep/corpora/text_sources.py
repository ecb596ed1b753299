"""Real English sentences with an open vocabulary, from text that installs offline (Debian).

The template grammar of :mod:`data_prep.corpora.text_gen` has a closed vocabulary of a few thousand
words. This module reads real English from Debian packages, cleans it for speech synthesis
and ASR targets, and splits it into disjoint train/dev/test sets:

``wordnet``  (``wordnet-base``)  usage examples of WordNet 3.0 ("the camera panned across the
             room"): modern everyday and technical English, the largest vocabulary.
``gcide``    (``dict-gcide``)    quotations and "as, ..." usage examples of the Collaborative
             International Dictionary of English (GPL): literary English, 17th-19th century.
``fortunes`` (``fortunes``, ``fortunes-min``) fortune cookies, only the inoffensive files
             and not the code/ascii-art/in-joke ones: jokes, quotes, aphorisms.

Every sentence is passed through :func:`data_prep.text_norm.normalize_text` (lowercase ``a-z``,
apostrophes inside words, single spaces), so it fits the character tokenizer. Before that the
raw text is filtered: URLs, code-like characters, all-caps words and abbreviations (which a
synthesiser would read differently from their normalised transcript), non-Latin letters,
ellipses, too many digits or symbols, and text that is not mostly English words (fewer than
90 % of its words known to WordNet's lemmas and glosses; this removes Middle English and
other languages from the dictionary quotations).

:func:`split_sentences` draws disjoint splits from the seed; a text source can be held out so
that it appears only in the test split (its sentences and vocabulary are unseen in training).
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import os
import random
import re
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from data_prep.corpora.text_gen import generate_sentences
from data_prep.text_norm import normalize_text
from pipeline.errors import SeqrecError
from pipeline.io_utils import user_cache_dir

MIN_WORDS = 4
"""Fewest words of a sentence (about 1.5 s of synthetic speech)."""
MAX_WORDS = 20
"""Most words of a sentence (about 7 s of synthetic speech)."""
MIN_KNOWN_FRACTION = 0.9
"""Share of a sentence's words that must be known English words (WordNet lexicon)."""

DEFAULT_HELD_OUT: tuple[str, ...] = ("fortunes",)
"""Proposed held-out text source: conversational jokes and aphorisms, a different register
from the dictionary examples the model trains on (use ``held_out_sources=DEFAULT_HELD_OUT``)."""
DEFAULT_COUNTS: dict[str, int] = {"train": 20_000, "dev": 600, "test": 600}
"""Proposed split sizes."""


class TextSourceError(SeqrecError, RuntimeError):
    """A text source is unknown or its Debian package is not installed."""


# ----------------------------------------------------------------------------- source registry


@dataclass(frozen=True)
class TextSource:
    """Where a text source's files are and how to read them.

    Attributes:
        name: Registry name (also the ``source`` tag of its sentences).
        packages: Debian packages that provide the files (for the error message).
        root: Directory of the files.
        patterns: Glob patterns relative to ``root``; matches are read in sorted order.
        exclude: File base names to skip.
        parser: Turns the sorted file paths into raw (unnormalised) candidate sentences.
        licence: Licence of the text, for the record.
    """

    name: str
    packages: tuple[str, ...]
    root: str
    patterns: tuple[str, ...]
    parser: Callable[[Sequence[str]], Iterable[str]]
    exclude: tuple[str, ...] = ()
    licence: str = ""

    def files(self) -> list[str]:
        """The source's files, sorted; empty if the package is not installed."""
        found: set[str] = set()
        for pattern in self.patterns:
            for path in glob.glob(os.path.join(self.root, pattern)):
                if os.path.isfile(path) and os.path.basename(path) not in self.exclude:
                    found.add(path)
        return sorted(found)

    def install_hint(self) -> str:
        return "apt-get install " + " ".join(self.packages)


def _read_text(path: str) -> str:
    opener = gzip.open if path.endswith((".gz", ".dz")) else open
    with opener(path, "rb") as fh:
        data = fh.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# --- WordNet: data.{noun,verb,adj,adv}; "<offset> <lex> <pos> ... | gloss; "example"; "example"

_WN_EXAMPLE_RE = re.compile(r'"([^"]+)"')


def _parse_wordnet(paths: Sequence[str]) -> Iterator[str]:
    for path in paths:
        for line in _read_text(path).splitlines():
            if line.startswith(" ") or "|" not in line:
                continue  # licence header
            gloss = line.split("|", 1)[1]
            for example in _WN_EXAMPLE_RE.findall(gloss):
                # "--Winston Churchill" style attributions follow some examples
                yield example.split(" - ")[0].strip()


def _wordnet_lexicon_words(paths: Sequence[str]) -> Iterator[str]:
    """Lemmas and gloss words of WordNet: the known-English word list of the filters."""
    for path in paths:
        for line in _read_text(path).splitlines():
            if line.startswith(" ") or "|" not in line:
                continue
            head, gloss = line.split("|", 1)
            fields = head.split()
            n_words = int(fields[3], 16)
            for i in range(n_words):
                yield from _LEX_WORD_RE.findall(fields[4 + 2 * i].lower())
            yield from _LEX_WORD_RE.findall(gloss.lower())


_LEX_WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)*")


# --- GCIDE (dictd format): quotation paragraphs indented >= 8 columns and ending in
# "--Author", plus "as, <usage example>; <usage example>." inside definitions.

_GCIDE_ATTRIB_RE = re.compile(r"\s--\s?[A-Z(]")
_GCIDE_AS_RE = re.compile(r"\bas, ([^\[\]{}]+?)(?:\.(?:\s|$)|\[|$)")


def _parse_gcide(paths: Sequence[str]) -> Iterator[str]:
    for path in paths:
        for para in _PARA_SPLIT_RE.split(_read_text(path)):
            if "--" not in para and "as, " not in para:
                continue
            lines = [ln for ln in para.split("\n") if ln.strip() and not _BRACKET_LINE_RE.match(ln)]
            if not lines:
                continue
            indent = min(len(ln) - len(ln.lstrip(" ")) for ln in lines)
            joined = " " + " ".join(ln.strip() for ln in lines)
            if indent >= 8:
                parts = _GCIDE_ATTRIB_RE.split(joined, maxsplit=1)
                if len(parts) == 2:
                    yield from _split_prose(parts[0])
            elif "as, " in joined:
                for m in _GCIDE_AS_RE.finditer(joined):
                    for example in m.group(1).split(";"):
                        example = example.strip()
                        if example.startswith('"') or " --" in example:
                            continue
                        yield example


_PARA_SPLIT_RE = re.compile(r"\n[ \t]*\n")
_BRACKET_LINE_RE = re.compile(r"\s*\[[^\]]*\]\s*$")


# --- fortunes: "%"-separated cookies, attributions after "--".

_FORTUNE_ATTRIB_RE = re.compile(r"^\s*(?:--|\u2014|\u2015)")
_SPEAKER_RE = re.compile(r"^[A-Z][\w.']*(?: [A-Z][\w.']*){0,2}:\s+")


def _parse_fortunes(paths: Sequence[str]) -> Iterator[str]:
    for path in paths:
        for cookie in re.split(r"(?m)^%\s*$", _read_text(path)):
            lines = cookie.strip("\n").split("\n")
            if any(_looks_like_art(ln) for ln in lines):
                continue
            body: list[str] = []
            for ln in lines:
                if _FORTUNE_ATTRIB_RE.match(ln):
                    break  # attribution and anything after it
                body.append(_SPEAKER_RE.sub("", ln.strip()))  # "Q: ", "Pope: "
            text = " ".join(body)
            text = re.sub(r"(?<=\w)\s+--\s*[A-Z][^.!?]*$", "", text)  # inline "--Author"
            yield from _split_prose(text)


def _looks_like_art(line: str) -> bool:
    stripped = line.strip()
    if not stripped:
        return False
    if re.search(r"[|\\/_=#*~^<>{}]{3,}|\t", stripped):
        return True
    letters = sum(c.isalpha() for c in stripped)
    return len(stripped) >= 8 and letters < 0.5 * len(stripped)


_SENTENCE_END_RE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(]?[A-Z])")


def _split_prose(text: str) -> list[str]:
    """Splits running text into sentences at . ! ? followed by a capital."""
    text = " ".join(text.split())
    out: list[str] = []
    for piece in _SENTENCE_END_RE.split(text):
        piece = piece.strip()
        if out and _ENDS_WITH_ABBREV_RE.search(out[-1]):
            out[-1] += " " + piece  # "Mr. Pope" is no sentence end; the filter drops it later
        elif piece:
            out.append(piece)
    return out


_ENDS_WITH_ABBREV_RE = re.compile(
    r"\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Prof|Gen|Col|Capt|Lt|Sgt|Rev|Hon|Gov|Sen|Mt|vs|etc|No|[A-Z])\.$"
)


_FORTUNES_EXCLUDE = (
    # code, unix, debian/irc in-jokes, ascii art, untranslated
    "art", "ascii-art", "computers", "debian", "linux", "linuxcookie", "perl", "knghtbrd",
    "translate-me", "zippy", "definitions", "disclaimer",
    # topics more likely to hold stereotypes or drug jokes though not in fortunes-off
    "ethnic", "men-women", "drugs",
)  # fmt: skip

TEXT_SOURCES: dict[str, TextSource] = {
    "wordnet": TextSource(
        name="wordnet",
        packages=("wordnet-base",),
        root="/usr/share/wordnet",
        patterns=("data.noun", "data.verb", "data.adj", "data.adv"),
        parser=_parse_wordnet,
        licence="WordNet 3.0 licence (BSD-like)",
    ),
    "gcide": TextSource(
        name="gcide",
        packages=("dict-gcide",),
        root="/usr/share/dictd",
        patterns=("gcide.dict.dz", "gcide.dict"),
        parser=_parse_gcide,
        licence="GPL-2+ (GCIDE, from Webster's 1913 and WordNet)",
    ),
    "fortunes": TextSource(
        name="fortunes",
        packages=("fortunes", "fortunes-min"),
        root="/usr/share/games/fortunes",
        patterns=("*",),
        exclude=_FORTUNES_EXCLUDE,
        parser=_parse_fortunes,
        licence="public domain / various, as in Debian's fortunes copyright file",
    ),
}
"""Registry: source name -> where its files are and how to parse them."""

_LEXICON_SOURCE = "wordnet"


def _source_files(name: str) -> tuple[TextSource, list[str]]:
    if name not in TEXT_SOURCES:
        raise TextSourceError(f"unknown text source {name!r}; known: {sorted(TEXT_SOURCES)}")
    spec = TEXT_SOURCES[name]
    files = [f for f in spec.files() if not f.endswith((".dat", ".u8"))]
    if not files:
        raise TextSourceError(
            f"text source {name!r} is not installed: no files matching {list(spec.patterns)} "
            f"in {spec.root}; install the Debian package(s) with `{spec.install_hint()}`"
        )
    return spec, files


def available_sources() -> list[str]:
    """Names of the registered sources whose files are installed (the lexicon included)."""
    try:
        _source_files(_LEXICON_SOURCE)
    except TextSourceError:
        return []
    out = []
    for name in TEXT_SOURCES:
        try:
            _source_files(name)
        except TextSourceError:
            continue
        out.append(name)
    return out


# ----------------------------------------------------------------------------- filtering

_CACHE: dict[tuple, object] = {}
_CACHE_LOCK = threading.RLock()


def _cached(key: tuple, build: Callable[[], object]) -> object:
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = build()
        return _CACHE[key]


def english_lexicon() -> frozenset[str]:
    """Normalised words known to WordNet (lemmas and gloss words): the English check."""
    spec, files = _source_files(_LEXICON_SOURCE)
    key = ("lexicon", spec, tuple(files))
    return _cached(key, lambda: frozenset(_wordnet_lexicon_words(files)))  # type: ignore[return-value]


_URL_RE = re.compile(r"https?:|www\.|\.(?:com|org|net|edu|gov)\b|@|\b\w+\.\w+/", re.I)
_CODE_RE = re.compile(r"[{}<>|\\_=#*~^\[\]/]|\+\+|::|\(\)|;\s*$")
_ALLCAPS_RE = re.compile(r"\b[A-Z][A-Z'.-]*[A-Z]\b")
_ABBREV_RE = re.compile(
    r"\b(?:[A-Za-z]\.){2,}|\b(?:Mr|Mrs|Ms|Dr|Prof|Capt|Lt|Sgt|Rev|Jr|Sr)\.|\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Prof|Gen|Col|Capt|Lt|Sgt|Rev|Hon|Gov|Sen|"
    r"Rep|Mt|Ft|vs|etc|viz|cf|ibid|approx|No|Vol|vol|ch|pp|fig|Co|Inc|Ltd|Bros|Esq|ca|ft|"
    r"lb|lbs|oz|in|yd|mi|km|cm|mm|kg|hr|min|sec|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|"
    r"Dec|Mon|Tue|Wed|Thu|Fri|Sat|Sun|[A-Z])\.(?=\s+[a-z0-9]|[,;:])|\b(?:etc|viz|cf|ibid)\."
)
_ELLIPSIS_RE = re.compile(r"\.\s?\.|\u2026")
_DIGIT_RE = re.compile(r"[0-9]")
_SYMBOL_RE = re.compile(r"[^A-Za-z0-9 .,;:!?'\"()`$%&-]")
_ALLOWED_PUNCT = set(" .,;:!?'\"-()\u2019\u2018\u201c\u201d\u2014\u2013`$%&")


def _latin_letter(ch: str) -> bool:
    base = unicodedata.normalize("NFKD", ch)[0]
    return ("a" <= base.lower() <= "z") or ch in "\u00df\u00e6\u00c6\u0153\u0152\u00f8\u00d8"


def clean_sentence(
    raw: str, lexicon: frozenset[str] | set[str], *, min_words: int = MIN_WORDS,
    max_words: int = MAX_WORDS,
) -> str | None:  # fmt: skip
    """Normalises one raw sentence, or returns None if it is unsuitable.

    Rejects URLs/e-mail, code-like characters, all-caps words and abbreviations, ellipses,
    non-Latin letters, text with more than 10 % symbols or more than 3 digits, word counts
    outside ``[min_words, max_words]`` and text with fewer than :data:`MIN_KNOWN_FRACTION`
    of its words in ``lexicon``.
    """
    raw = " ".join(raw.split()).strip(" -\u2014")
    if len(raw) < 8 or _URL_RE.search(raw) or _CODE_RE.search(raw):
        return None
    if _ALLCAPS_RE.search(raw) or _ABBREV_RE.search(raw) or _ELLIPSIS_RE.search(raw):
        return None
    if raw.isascii():
        digits = len(_DIGIT_RE.findall(raw))
        symbols = len(_SYMBOL_RE.findall(raw))
    else:
        symbols = digits = 0
        for ch in raw:
            if ch.isalpha():
                if not _latin_letter(ch):
                    return None
            elif ch.isdigit():
                digits += 1
            elif ch not in _ALLOWED_PUNCT:
                symbols += 1
    sentence = normalize_text(raw)
    words = sentence.split()
    if not min_words <= len(words) <= max_words:
        return None
    if any(len(w) == 1 and w not in ("a", "i", "o") for w in words):
        return None  # stray letters: initials, list labels, "x" for times
    known = sum(w in lexicon or w.replace("'", "") in lexicon or _stem_known(w, lexicon)
                for w in words)  # fmt: skip
    if known < MIN_KNOWN_FRACTION * len(words):
        return None
    return sentence


_SUFFIXES = ("'s", "s'", "s", "es", "ed", "d", "ing", "ly", "er", "est", "n't", "'ll", "'re",
             "'ve", "'d", "'m")  # fmt: skip


def _stem_known(word: str, lexicon: frozenset[str] | set[str]) -> bool:
    for suf in _SUFFIXES:
        if word.endswith(suf) and len(word) > len(suf) + 1:
            stem = word[: -len(suf)]
            if stem in lexicon or stem + "e" in lexicon:
                return True
            if (
                suf in ("es", "ed", "er", "est")
                and stem.endswith("i")
                and stem[:-1] + "y" in lexicon
            ):
                return True
            if suf in ("ed", "ing", "er", "est") and len(stem) > 2 and stem[-1] == stem[-2] \
                    and stem[:-1] in lexicon:  # fmt: skip
                return True
    return False


def _disk_cache_path(spec: TextSource, files: Sequence[str], prefix: str, code: Sequence[str]) -> str | None:
    """Where parsed sentences are cached across processes (None: caching off).

    ``$SEQREC_TEXT_CACHE`` names the directory (``""`` or ``"0"`` turns it off); the default is
    ``$XDG_CACHE_HOME/seqrec/text_sources``. The key hashes this module's code (and ``code``,
    the files of the registry's own module), the source's spec and the files' paths, sizes and
    modification times, so a changed filter or package reparses.
    """
    root = user_cache_dir("SEQREC_TEXT_CACHE", "text_sources")
    if root is None:
        return None
    h = hashlib.sha256()
    for module in (*code, __file__):
        with open(module, "rb") as fh:
            h.update(fh.read())
    h.update(repr((spec.name, spec.root, spec.patterns, spec.exclude)).encode())
    for f in files:
        st = os.stat(f)
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return os.path.join(root, f"{prefix}{spec.name}-{h.hexdigest()[:20]}.txt")


def cleaned_sentences(spec: TextSource, files: Sequence[str], *, prefix: str = "", code: Sequence[str] = ()) -> list[str]:
    """All cleaned sentences of a source's ``files`` with up to 50 words, deduplicated, in file
    order; cached per process and on disk (:func:`_disk_cache_path`, file names starting with
    ``prefix``). Other registries of text (``lm_text``) read theirs through it too."""

    def parse() -> list[str]:
        lexicon = english_lexicon()
        seen: set[str] = set()
        out: list[str] = []
        for raw in spec.parser(files):
            sentence = clean_sentence(raw, lexicon, min_words=1, max_words=50)
            if sentence is not None and sentence not in seen:
                seen.add(sentence)
                out.append(sentence)
        return out

    def build() -> list[str]:
        cache = _disk_cache_path(spec, files, prefix, code)
        if cache is not None and os.path.isfile(cache):
            with open(cache, encoding="utf-8") as fh:
                return fh.read().split("\n")[:-1]
        out = parse()
        if cache is not None:
            try:
                os.makedirs(os.path.dirname(cache), exist_ok=True)
                tmp = f"{cache}.{os.getpid()}.tmp"
                with open(tmp, "w", encoding="utf-8") as fh:
                    fh.write("".join(s + "\n" for s in out))
                os.replace(tmp, cache)
            except OSError:
                pass  # read-only home: just no cross-process cache
        return out

    return _cached((prefix + "sentences", spec, tuple(files)), build)  # type: ignore[return-value]


def _load_all(name: str) -> list[str]:
    """All cleaned sentences of a source with up to 50 words, deduplicated, in file order."""
    return cleaned_sentences(*_source_files(name))


def load_sentences(
    name: str, *, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS
) -> list[str]:
    """The cleaned, normalised, deduplicated sentences of one text source, in file order.

    Parsed text is cached per process, so repeated calls are cheap.

    Args:
        name: A key of :data:`TEXT_SOURCES`.
        min_words: Fewest words per sentence.
        max_words: Most words per sentence (at most 50).

    Raises:
        TextSourceError: unknown source, or its Debian package (or ``wordnet-base``, whose
            lexicon the filters use) is not installed; the message names the package.
    """
    if not 1 <= min_words <= max_words <= 50:
        raise ValueError(f"need 1 <= min_words <= max_words <= 50, got {min_words}, {max_words}")
    return [s for s in _load_all(name) if min_words <= s.count(" ") + 1 <= max_words]


def load_all_sources(
    names: Iterable[str] | None = None, *, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS
) -> dict[str, list[str]]:
    """``{name: load_sentences(name)}`` for ``names`` (default: every installed source)."""
    names = available_sources() if names is None else list(names)
    return {n: load_sentences(n, min_words=min_words, max_words=max_words) for n in names}


# ----------------------------------------------------------------------------- splits


def split_sentences(
    sentences_by_source: Mapping[str, Sequence[str]],
    *,
    seed: int,
    counts: Mapping[str, int],
    held_out_sources: Iterable[str] = (),
    held_out_fraction: float = 0.5,
    template_fraction: float = 0.0,
    test_split: str = "test",
) -> dict[str, list[tuple[str, str]]]:
    """Draws disjoint splits of ``(sentence, source)`` pairs, deterministically from ``seed``.

    Sentences are normalised with :func:`normalize_text` and deduplicated across all sources,
    so no normalised sentence is in two splits. Sentences of ``held_out_sources`` go only to
    ``test_split``, where they make up ``held_out_fraction`` of it (the rest is in-domain, so
    the test set measures both); a sentence that a held-out source shares with another source
    is removed from the in-domain pool. Other splits and the in-domain part of the test split
    are drawn uniformly from the pooled in-domain sentences (so each source contributes in
    proportion to its size), except that a ``template_fraction`` share of every split comes
    from :func:`data_prep.corpora.text_gen.generate_sentences` (source tag ``"template"``).

    Args:
        sentences_by_source: Source name -> sentences (e.g. from :func:`load_all_sources`).
        seed: Same inputs and seed give the same splits.
        counts: Split name -> number of sentences, e.g. :data:`DEFAULT_COUNTS`.
        held_out_sources: Sources seen only in ``test_split`` (proposed: :data:`DEFAULT_HELD_OUT`).
        held_out_fraction: Share of ``test_split`` taken from the held-out sources.
        template_fraction: Share of each split taken from template-grammar sentences.
        test_split: Name of the split that receives the held-out sources.

    Returns:
        Split name -> list of ``(normalised sentence, source)``, in ``counts`` order.

    Raises:
        ValueError: bad arguments, or not enough distinct sentences for the counts.
    """
    held_out = set(held_out_sources)
    unknown = held_out - set(sentences_by_source)
    if unknown:
        raise ValueError(f"held-out sources {sorted(unknown)} are not in sentences_by_source")
    if held_out and test_split not in counts:
        raise ValueError(f"held-out sources need a {test_split!r} split in counts")
    if any(c < 0 for c in counts.values()):
        raise ValueError(f"counts must be >= 0, got {dict(counts)}")
    if not 0.0 <= held_out_fraction <= 1.0 or not 0.0 <= template_fraction < 1.0:
        raise ValueError("held_out_fraction must be in [0, 1] and template_fraction in [0, 1)")

    rng = random.Random(seed)
    # Pools, deduplicated by normalised text; held-out sources claim shared sentences.
    held_pool: dict[str, str] = {}
    for name in sorted(held_out):
        for s in sentences_by_source[name]:
            key = normalize_text(s)
            if key:
                held_pool.setdefault(key, name)
    in_pool: dict[str, str] = {}
    for name in sorted(set(sentences_by_source) - held_out):
        for s in sentences_by_source[name]:
            key = normalize_text(s)
            if key and key not in held_pool:
                in_pool.setdefault(key, name)

    plan: dict[str, tuple[int, int, int]] = {}  # split -> (in-domain, held-out, template)
    for split, n in counts.items():
        n_held = round(n * held_out_fraction) if held_out and split == test_split else 0
        n_tmpl = round((n - n_held) * template_fraction)
        plan[split] = (n - n_held - n_tmpl, n_held, n_tmpl)

    def draw(pool: dict[str, str], need: int, what: str) -> list[tuple[str, str]]:
        if need > len(pool):
            raise ValueError(f"need {need} {what} sentences but only {len(pool)} are available")
        keys = sorted(pool)
        rng.shuffle(keys)
        return [(k, pool[k]) for k in keys[:need]]

    in_draw = draw(in_pool, sum(p[0] for p in plan.values()), "in-domain")
    held_draw = draw(held_pool, sum(p[1] for p in plan.values()), "held-out")
    tmpl_total = sum(p[2] for p in plan.values())
    tmpl_draw: list[tuple[str, str]] = []
    if tmpl_total:
        taken = set(in_pool) | set(held_pool)
        for s in generate_sentences(tmpl_total + len(taken) // 20 + 1000, seed=seed,
                                    min_words=MIN_WORDS, max_words=MAX_WORDS):  # fmt: skip
            key = normalize_text(s)
            if key not in taken:
                tmpl_draw.append((key, "template"))
                if len(tmpl_draw) == tmpl_total:
                    break
        if len(tmpl_draw) < tmpl_total:
            raise ValueError(f"could not draw {tmpl_total} distinct template sentences")

    out: dict[str, list[tuple[str, str]]] = {}
    i_in = i_held = i_tmpl = 0
    for split, (n_in, n_held, n_tmpl) in plan.items():
        items = (in_draw[i_in : i_in + n_in] + held_draw[i_held : i_held + n_held]
                 + tmpl_draw[i_tmpl : i_tmpl + n_tmpl])  # fmt: skip
        i_in, i_held, i_tmpl = i_in + n_in, i_held + n_held, i_tmpl + n_tmpl
        rng.shuffle(items)
        out[split] = items
    return out


# ----------------------------------------------------------------------------- statistics


def _words(sentences: Iterable[str | tuple[str, str]]) -> Iterator[str]:
    for s in sentences:
        text = s[0] if isinstance(s, tuple) else s
        yield from text.split()


def vocabulary_stats(
    sentences: Iterable[str | tuple[str, str]],
    reference: Iterable[str | tuple[str, str]] | None = None,
) -> dict[str, float | int]:
    """Vocabulary statistics of normalised sentences (``str`` or ``(sentence, source)``).

    Returns:
        ``sentences``, ``running_words``, ``distinct_words``, ``mean_words`` (per sentence),
        and with ``reference`` (e.g. the training set) also ``oov_running`` / ``oov_distinct``
        (words of ``sentences`` never seen in ``reference``), ``oov_rate`` (share of running
        words) and ``oov_type_rate`` (share of distinct words).
    """
    items = list(sentences)
    counts = Counter(_words(items))
    running = sum(counts.values())
    stats: dict[str, float | int] = {
        "sentences": len(items),
        "running_words": running,
        "distinct_words": len(counts),
        "mean_words": running / len(items) if items else 0.0,
    }
    if reference is not None:
        known = set(_words(reference))
        oov = {w: c for w, c in counts.items() if w not in known}
        stats["oov_running"] = sum(oov.values())
        stats["oov_distinct"] = len(oov)
        stats["oov_rate"] = stats["oov_running"] / running if running else 0.0
        stats["oov_type_rate"] = len(oov) / len(counts) if counts else 0.0
    return stats


def sentences_to_reach(
    sentences: Iterable[str | tuple[str, str]], distinct_words: int
) -> int | None:
    """How many of ``sentences`` (in order) it takes to see ``distinct_words`` words; None if never."""
    seen: set[str] = set()
    for i, s in enumerate(sentences, start=1):
        seen.update((s[0] if isinstance(s, tuple) else s).split())
        if len(seen) >= distinct_words:
            return i
    return None


def timed_load(name: str) -> tuple[list[str], float]:
    """``load_sentences(name)`` and the seconds it took (uncached on first call)."""
    start = time.perf_counter()
    out = load_sentences(name)
    return out, time.perf_counter() - start
