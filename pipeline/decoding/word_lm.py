"""A word-level language model for decoding: its files, its tuned weights, and where it comes from.

A speech bundle may carry one (``config.yaml`` section ``lm``)::

    lm:
      arpa: lm.arpa.gz          # word n-gram, ARPA (gzip) or KenLM binary
      lexicon: lexicon.txt      # words spelt in the model's tokens (pipeline.decoding.lexicon)
      compiled: lexicon.npz     # optional: the same, ready for the decoder (compiled_lexicon)
      sha256: {lm.arpa.gz: ..., lexicon.txt: ..., lexicon.npz: ...}
      order: 3
      lm_weight: 3.0            # tuned on the dev split with this model
      word_score: -2.0
      beam_size: 32
      beam_size_token: 8        # tokens tried per frame

:func:`resolve_lm` turns the user's choice (``"auto"``: the bundle's, ``"none"``: off, or a
path to another ARPA/KenLM file) into a :class:`WordLM`, or None. Files are checked before
KenLM sees them (hashes for the bundle's own, a structure check for a user's file), so a
missing, truncated or foreign file is one clear error. Torch-free until a decoder is built.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.decoding.lexicon import LexiconError, read_lexicon, spell_words
from pipeline.decoding.ngram import ArpaError, check_arpa
from pipeline.errors import SeqrecError, one_line, shown
from pipeline.limits import LimitError, check_beam, current_limits

if TYPE_CHECKING:
    from pipeline.decoding.beam import BeamSearchDecoder
    from pipeline.decoding.compiled_lexicon import CompiledLexicon
    from pipeline.decoding.flashlight import FlashlightSearch
    from pipeline.decoding.hotwords import Hotword
    from pipeline.tokenizer import CharTokenizer
from pipeline.bundle import Bundle, BundleError
from pipeline.io_utils import file_sha256

log = logging.getLogger(__name__)

#: Values of the ``lm`` option that turn word-level decoding off.
LM_OFF = ("none", "off")


class LMError(SeqrecError, ValueError):
    """A language model or lexicon cannot be used (the message names the file)."""


@dataclass(frozen=True)
class WordLM:
    """Files and weights of word-level decoding.

    Attributes:
        arpa: The n-gram model file (ARPA, gzipped ARPA or KenLM binary).
        lexicon: Its lexicon file, or None to spell the ARPA's own words at decoder build time.
        lm_weight: Weight of the LM log-probability (natural-log units in the decoder).
        word_score: Score added per word.
        beam_size: Beam width.
        beam_size_token: Tokens tried per frame, the likeliest first (None: all).
        words: The ARPA's unigrams when ``lexicon`` is None.
        spellings: ``lexicon`` already parsed (word -> spelling), so it is read once.
        compiled: The bundle's compiled lexicon, which the search uses instead of
            ``lexicon`` (same words, spellings and scores, without parsing or scoring).
        hotwords: (word, boost) pairs the search favours (:meth:`with_hotwords`).
    """

    arpa: Path
    lexicon: Path | None
    lm_weight: float = 2.0
    word_score: float = 0.0
    beam_size: int = 32
    beam_size_token: int | None = 8
    words: tuple[str, ...] = ()
    spellings: dict[str, list[str]] | None = field(default=None, compare=False, repr=False)
    compiled: CompiledLexicon | None = field(default=None, compare=False, repr=False)
    hotwords: tuple[tuple[str, float], ...] = ()

    def lexicon_entries(self, tokenizer: CharTokenizer) -> dict[str, list[str]]:
        """Word -> spelling in our tokens: the lexicon file's (parsed once and kept), or the
        ARPA's own words spelt letter by letter.

        Raises:
            LMError: no word can be spelt with the model's tokens.
        """
        if self.spellings is not None:
            return self.spellings
        if self.lexicon is not None:
            try:
                return read_lexicon(self.lexicon, tokenizer)
            except LexiconError as exc:
                raise LMError(str(exc)) from None
        spelt, _ = spell_words(self.words, tokenizer)
        if not spelt:
            raise LMError(f"{self.arpa}: no word of the LM can be spelt with the model's tokens")
        return spelt

    def search(self, tokenizer: CharTokenizer, beam_size: int | None = None) -> FlashlightSearch:
        """Builds the flashlight search (loads the LM and its lexicon trie); torch-free.

        Raises:
            LMError: the lexicon has no usable word, or KenLM refuses the model file or runs
                out of memory loading it.
            LimitError: the beam is wider than ``max_beam``.
        """
        # lazy: pulls in numpy, which the torch-free engine loads only when a word LM is used
        from pipeline.decoding.flashlight import FlashlightSearch

        beam = check_beam(beam_size or self.beam_size, self.arpa)
        try:
            return FlashlightSearch(
                tokenizer.tokens, beam_size=beam, lm=self.arpa, lexicon=self.compiled or self.lexicon_entries(tokenizer),
                lm_weight=self.lm_weight, word_score=self.word_score, beam_size_token=self.beam_size_token,
                hotwords=dict(self.hotwords) or None,
            )  # fmt: skip
        except RuntimeError as exc:  # KenLM's own parse errors
            raise LMError(f"{self.arpa}: KenLM cannot load it: {one_line(exc)}") from exc
        except MemoryError as exc:  # std::bad_alloc in KenLM or flashlight
            raise LMError(f"{self.arpa}: out of memory loading the language model with a beam of {beam}") from exc

    def with_hotwords(self, entries: list[Hotword], tokenizer: CharTokenizer) -> WordLM:
        """This LM with hotword entries to favour (:mod:`pipeline.decoding.hotwords`); words
        outside the lexicon are added to it.

        Raises:
            HotwordError: none of the entries can be spelt with the model's tokens.
            LimitError: the lexicon plus the words added is past ``max_lexicon_words``.
            LMError: the lexicon file cannot be read.
        """
        # lazy: pulls in numpy, which the torch-free engine loads only when a word LM is used
        from pipeline.decoding.hotwords import hotword_boosts

        boosts = hotword_boosts(entries, tokenizer)
        if not boosts:
            return self
        lm = self if self.compiled is not None else replace(self, spellings=self.lexicon_entries(tokenizer))
        known = set(lm.compiled.words) if lm.compiled is not None else lm.spellings
        added = sum(word not in known for word in boosts)
        limit = current_limits().max_lexicon_words
        if len(known) + added > limit:
            what = f"the lexicon plus {added:,} hotwords has more entries than allowed"
            raise LimitError(self.lexicon or self.arpa, what, "max_lexicon_words", limit)
        log.info("hotwords: %d words, %d of them added to the lexicon", len(boosts), added)
        return replace(lm, hotwords=tuple(boosts.items()))

    def decoder(self, tokenizer: CharTokenizer, beam_size: int | None = None) -> BeamSearchDecoder:
        """:meth:`search` for torch tensors (a :class:`~pipeline.decoding.beam.BeamSearchDecoder`)."""
        # lazy: beam imports torch; the torch-free engine never calls this
        from pipeline.decoding.beam import BeamSearchDecoder

        return BeamSearchDecoder.from_search(self.search(tokenizer, beam_size))


def _number(section: dict[str, Any], key: str, where: str, *, positive_int: bool = False) -> Any:
    value = section.get(key)
    if positive_int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise LMError(f"{where}: lm.{key} must be a positive integer, got {shown(value)}")
        return value
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise LMError(f"{where}: lm.{key} must be a finite number, got {shown(value)}")
    return float(value)


def bundle_lm(bundle: Bundle, tokenizer: CharTokenizer) -> WordLM | None:
    """The bundle's own word LM (None if it has none), its files checked against their hashes.

    Both files are checked before anything reads them whole (regular files inside the bundle,
    at most ``max_lm_bytes`` on disk), then hashed, then read through within the run's limits
    (:func:`pipeline.decoding.ngram.check_arpa`, :func:`pipeline.decoding.lexicon.read_lexicon`),
    so KenLM and flashlight only ever load files that passed them.

    Raises:
        LMError: the section is malformed, or a file is missing, escapes the bundle, or does
            not have its recorded sha256 (truncated or altered).
        LimitError: a file, or ``lm.beam_size``, is past one of the limits.
    """
    section = bundle.config.get("lm")
    if section is None:
        return None
    where = str(bundle.path / "config.yaml")
    if not isinstance(section, dict):
        raise LMError(f"{where}: 'lm' must be a mapping")
    hashes = section.get("sha256")
    if not isinstance(hashes, dict):
        raise LMError(f"{where}: lm.sha256 must map each LM file to its hash")
    beam_size = check_beam(_number(section, "beam_size", where, positive_int=True), where, "lm.beam_size")
    limit = current_limits().max_lm_bytes
    paths = {}
    for key in ("arpa", "lexicon", "compiled"):
        name = section.get(key)
        if key == "compiled" and name is None:  # optional (bundles from before it have none)
            continue
        try:
            path = bundle.file(name)  # a regular file inside the bundle (stat only)
        except BundleError as exc:
            raise LMError(str(exc)) from None
        if path.stat().st_size > limit:
            raise LimitError(path, "the file is larger than allowed", "max_lm_bytes", limit)
        if file_sha256(path) != hashes.get(name):
            raise LMError(f"{path}: does not match the sha256 recorded in the bundle (truncated or altered)")
        paths[key] = path
    spellings = compiled = None
    try:
        check_arpa(paths["arpa"], full=False)  # bounded: a bomb or a lying header stops here, not in KenLM
        if "compiled" in paths:  # ready for the decoder: its own checks replace parsing the lexicon
            # lazy: pulls in numpy, which the torch-free engine loads only when a word LM is used
            from pipeline.decoding.compiled_lexicon import CompiledLexicon

            sources = {section[k]: hashes[section[k]] for k in ("arpa", "lexicon")}
            compiled = CompiledLexicon.load(paths["compiled"], tokenizer.tokens, sources)
        else:
            spellings = read_lexicon(paths["lexicon"], tokenizer)  # parsed once: a bad entry fails here
    except (ArpaError, LexiconError) as exc:
        raise LMError(str(exc)) from None
    return WordLM(
        arpa=paths["arpa"],
        lexicon=paths["lexicon"],
        spellings=spellings,
        compiled=compiled,
        lm_weight=_number(section, "lm_weight", where),
        word_score=_number(section, "word_score", where),
        beam_size=beam_size,
        beam_size_token=_number(section, "beam_size_token", where, positive_int=True)
        if "beam_size_token" in section else None,
    )


def file_lm(path: str | Path, tokenizer: CharTokenizer, defaults: WordLM | None = None) -> WordLM:
    """A user's ARPA (or KenLM binary) file, with the bundle LM's weights when it has some.

    An ARPA file's own words make the lexicon; a KenLM binary needs the bundle's lexicon.

    Raises:
        LMError: the file is missing, not a regular file (a FIFO or device is refused before it
            is opened), empty, truncated or not an LM, or a binary without lexicon.
        LimitError: the file is past one of the run's limits (see :func:`check_arpa`).
    """
    path = Path(path)
    try:
        info = check_arpa(path)
    except ArpaError as exc:
        raise LMError(str(exc)) from None
    base = defaults or WordLM(arpa=path, lexicon=None)
    if info.binary:
        if defaults is None or defaults.lexicon is None:
            raise LMError(f"{path}: a KenLM binary has no readable word list; use an ARPA file or a bundle with a lexicon")
        return replace(base, arpa=path)
    return replace(base, arpa=path, lexicon=None, words=info.words)


def apply_hotwords(lm: WordLM | None, hotwords: Any, tokenizer: CharTokenizer) -> WordLM | None:
    """``lm`` with the API's or CLI's ``hotwords`` (see :func:`pipeline.decoding.hotwords.as_hotwords`);
    None or an empty list leaves it as it is.

    Raises:
        HotwordError: an entry is malformed or none can be spelt, or there are hotwords but no
            word LM (the bundle has none, or ``lm="none"``).
        LimitError: see :meth:`WordLM.with_hotwords`.
    """
    # lazy: pulls in numpy, which the torch-free engine loads only when a word LM is used
    from pipeline.decoding.hotwords import HotwordError, as_hotwords

    entries = as_hotwords(hotwords)
    if not entries:
        return lm
    if lm is None:
        raise HotwordError("hotwords need a word-level LM: this bundle has none, or it was turned off (lm none)")
    return lm.with_hotwords(entries, tokenizer)


def resolve_lm(option: str | Path | None, bundle: Bundle, tokenizer: CharTokenizer) -> WordLM | None:
    """The word LM to decode with: ``"auto"`` the bundle's (if any), ``"none"``/None off, else a file.

    Raises:
        LMError: see :func:`bundle_lm` and :func:`file_lm`.
    """
    if option is None or (isinstance(option, str) and option.lower() in LM_OFF):
        return None
    own = bundle_lm(bundle, tokenizer)
    if isinstance(option, str) and option.lower() == "auto":
        return own
    lm = file_lm(option, tokenizer, own)
    log.info("decoding with the word LM %s", lm.arpa)
    return lm
