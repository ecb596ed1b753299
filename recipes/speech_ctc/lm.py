"""The speech recipe's word LM (stage 4 builds it, stage 5 tunes and decodes with it).

Text (``lm.text``):

* ``train``: the train split's transcripts;
* ``sources`` (embedded corpus): the train transcripts plus every other sentence of the text
  sources that the train split was drawn from (WordNet examples, GCIDE quotations), with any
  sentence of the dev and test splits removed. Held-out text sources (fortunes) never reach
  the LM, since no train utterance comes from them. For an imported corpus it is ``train``.

``lm.extra_sources`` adds text that only the LM reads (:mod:`data_prep.corpora.lm_text`, e.g.
``[ding]``: Ding's English example sentences, Debian ``trans-de-en``), whatever ``lm.text``; the
speech corpus never draws from it. Its dev and test sentences are removed like the rest, and so is
every sentence of a text source the train split does not draw from (fortunes: the held-out text).

The lexicon is the LM's vocabulary (plus ``lm.extra_words``, a word-list file, if set) spelt
in the model's tokens, and the spelling units of :mod:`pipeline.decoding.lexicon` at
``lm.spell_log10`` per letter (the unknown-word path; ``null`` leaves it out).

LM weight, word score and beam are chosen on the dev split only, by a grid over
``lm.lm_weights`` x ``lm.word_scores`` at ``lm.beam_size`` (and ``lm.beam_size_token``).
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from data_prep.corpora import lm_text, text_sources
from data_prep.text_norm import normalize_text
from pipeline.decoding.compiled_lexicon import COMPILED_NAME, compile_lexicon
from pipeline.decoding.greedy import greedy_decode
from pipeline.decoding.lexicon import add_spelling_units, spell_words, write_lexicon
from pipeline.decoding.ngram import build_kneser_ney
from pipeline.decoding.word_lm import WordLM
from pipeline.io_utils import file_sha256
from pipeline.scoring import error_rates
from pipeline.tokenizer import CharTokenizer

log = logging.getLogger(__name__)

ARPA_NAME = "lm.arpa.gz"
LEXICON_NAME = "lexicon.txt"


@dataclass(frozen=True)
class LMConfig:
    """Word-level LM of the speech recipe (built from training text only)."""

    enabled: bool = True
    order: int = 3
    prune: tuple[int, ...] = (0, 1, 1)  # per order: drop n-grams seen at most this often
    text: str = "sources"  # "sources" or "train" (see the module docstring)
    extra_words: str = ""  # a word-list file (one word per line) added to the lexicon
    extra_sources: tuple[str, ...] = ()  # LM-only text (data_prep.corpora.lm_text), e.g. [ding]
    spell_log10: float | None = -4.0  # spelling units' log10 probability; null: no unknown-word path
    beam_size: int = 32
    beam_size_token: int = 8  # tokens tried per frame, the likeliest first
    lm_weights: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0)
    word_scores: tuple[float, ...] = (-3.0, -2.0, -1.0, 0.0)

    def __post_init__(self) -> None:
        if self.text not in ("sources", "train"):
            raise ValueError(f"lm.text must be 'sources' or 'train', got {self.text!r}")
        if self.order < 1 or len(self.prune) != self.order:
            raise ValueError(f"lm.prune needs one threshold per order ({self.order}), got {list(self.prune)}")
        if self.beam_size < 1 or self.beam_size_token < 1 or not self.lm_weights or not self.word_scores:
            raise ValueError("lm.beam_size(_token) must be >= 1 and the lm_weights/word_scores grids non-empty")


def lm_sentences(cfg: LMConfig, train: list[dict], exclude: set[str]) -> list[str]:
    """The LM's training sentences.

    Args:
        cfg: The LM section.
        train: Train manifest records (``text``, optionally ``text_source``).
        exclude: Dev and test transcripts, never to be used.
    """
    sentences = [r["text"] for r in train if r["text"] not in exclude]
    sources = sorted({r["text_source"] for r in train if r.get("text_source")})
    if cfg.text == "sources" and sources:
        available = text_sources.load_all_sources()
        seen = set(sentences)
        for name in sources:
            for raw in available.get(name, ()):
                text = normalize_text(raw)
                if text and text not in exclude and text not in seen:
                    seen.add(text)
                    sentences.append(text)
        log.info("LM text: %d sentences from the train split and the sources %s", len(sentences), sources)
    if cfg.extra_sources:
        sentences += _extra_sentences(cfg.extra_sources, sources, exclude | set(sentences))
    return sentences


def _extra_sentences(names: tuple[str, ...], train_sources: list[str], exclude: set[str]) -> list[str]:
    """Sentences of the LM-only text sources ``names``, without ``exclude`` and without any
    sentence of an installed corpus text source that ``train_sources`` leaves out (held out)."""
    held_out = [n for n in text_sources.available_sources() if n not in train_sources]
    banned = set(exclude)
    for name in held_out:
        banned.update(normalize_text(s) for s in text_sources.load_sentences(name))
    out: list[str] = []
    for name in names:
        before = len(out)
        for raw in lm_text.load_lm_text(name):
            text = normalize_text(raw)
            if text and text not in banned:
                banned.add(text)
                out.append(text)
        log.info("LM text: %d sentences from the LM-only source %s (held-out sources %s removed)",
                 len(out) - before, name, held_out)  # fmt: skip
    return out


def _word_list(path: str) -> list[str]:
    """Lowercased words of a one-word-per-line file (e.g. Debian's wamerican)."""
    try:
        return [w.strip().lower() for w in Path(path).read_text(encoding="utf-8").split()]
    except (OSError, UnicodeDecodeError) as exc:
        raise FileNotFoundError(f"{path}: cannot read lm.extra_words: {exc}") from None


def build_lm(cfg: LMConfig, sentences: list[str], tokenizer: CharTokenizer, out_dir: Path) -> dict[str, Any]:
    """Writes ``out_dir/lm.arpa.gz`` and ``out_dir/lexicon.txt``; returns their statistics."""
    t0 = time.perf_counter()
    model = build_kneser_ney(sentences, cfg.order, prune=cfg.prune)
    words = list(model.vocabulary)
    if cfg.extra_words:
        words += _word_list(cfg.extra_words)
    lexicon, dropped = spell_words(words, tokenizer)
    if cfg.spell_log10 is not None:  # unigrams outside the KN distribution: a flat cost per letter
        lexicon = add_spelling_units(lexicon, tokenizer, model, cfg.spell_log10)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.write_arpa(out_dir / ARPA_NAME)
    write_lexicon(out_dir / LEXICON_NAME, lexicon)
    stats = {
        "sentences": len(sentences),
        "words": sum(len(s.split()) for s in sentences),
        "ngrams": [len(g) for g in model.grams],
        "discounts": [[round(d, 4) for d in ds] for ds in model.discounts],
        "lexicon_words": len(lexicon),
        "lexicon_dropped": dropped,
        "arpa_bytes": (out_dir / ARPA_NAME).stat().st_size,
        "lexicon_bytes": (out_dir / LEXICON_NAME).stat().st_size,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    log.info("LM: %s", stats)
    return stats


def decode_all(decoder, log_probs: list[torch.Tensor], tokenizer: CharTokenizer) -> list[str]:
    """Texts of per-utterance (T_i, V) log-probabilities, one decoder call per utterance
    (``decoder`` None: greedy)."""
    out = []
    for lp in log_probs:
        lengths = torch.tensor([lp.size(0)])
        if decoder is None:
            hyp = greedy_decode(lp.unsqueeze(0), lengths, blank=tokenizer.blank_id)[0]
        else:
            hyp = decoder.decode(lp.unsqueeze(0), lengths)[0]
        out.append(tokenizer.decode(hyp.token_ids))
    return out


def tune(
    cfg: LMConfig, lm_dir: Path, tokenizer: CharTokenizer, log_probs: list[torch.Tensor], refs: list[str]
) -> tuple[dict[str, Any], Any]:
    """Grid search of (lm_weight, word_score) on dev.

    Returns:
        (the best point and every point's WER, for results.json; the best point's decoder).
    """
    grid: dict[str, float] = {}
    best: tuple[float, float, float, Any] | None = None
    for lw, ws in itertools.product(cfg.lm_weights, cfg.word_scores):
        lm = WordLM(lm_dir / ARPA_NAME, lm_dir / LEXICON_NAME, lm_weight=lw, word_score=ws, beam_size=cfg.beam_size,
                    beam_size_token=cfg.beam_size_token)  # fmt: skip
        decoder = lm.decoder(tokenizer)
        wer = error_rates(refs, decode_all(decoder, log_probs, tokenizer))["wer"]
        grid[f"{lw:g},{ws:g}"] = round(wer, 4)
        log.info("LM tuning on dev: lm_weight %g word_score %g: WER %.2f%%", lw, ws, 100 * wer)
        if best is None or wer < best[0]:
            best = (wer, lw, ws, decoder)
    assert best is not None
    record = {"lm_weight": best[1], "word_score": best[2], "beam_size": cfg.beam_size,
              "beam_size_token": cfg.beam_size_token, "dev_wer": round(best[0], 4), "grid": grid}  # fmt: skip
    return record, best[3]


def bundle_record(
    lm_dir: Path, order: int, tuned: dict[str, Any], tokenizer: CharTokenizer
) -> tuple[dict[str, Any], dict[str, Path]]:
    """The bundle's ``lm`` config section and the files to copy into the bundle (the lexicon
    also compiled for the decoder, :mod:`pipeline.decoding.compiled_lexicon`)."""
    files = {ARPA_NAME: lm_dir / ARPA_NAME, LEXICON_NAME: lm_dir / LEXICON_NAME, COMPILED_NAME: lm_dir / COMPILED_NAME}
    compile_lexicon(files[ARPA_NAME], files[LEXICON_NAME], tokenizer, files[COMPILED_NAME])
    record = {
        "arpa": ARPA_NAME,
        "lexicon": LEXICON_NAME,
        "compiled": COMPILED_NAME,
        "sha256": {name: file_sha256(path) for name, path in files.items()},
        "order": order,
        "lm_weight": float(tuned["lm_weight"]),
        "word_score": float(tuned["word_score"]),
        "beam_size": int(tuned["beam_size"]),
        "beam_size_token": int(tuned["beam_size_token"]),
    }
    return record, files
