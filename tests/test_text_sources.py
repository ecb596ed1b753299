"""Tests of data_prep.corpora.text_sources: real English sentences from Debian text packages."""

from __future__ import annotations

import dataclasses

import pytest

from data_prep.corpora import text_sources as ts
from data_prep.text_norm import normalize_text
from pipeline.tokenizer import DEFAULT_TOKENS

ALPHABET = set(DEFAULT_TOKENS[1:])
INSTALLED = ts.available_sources()


def _need(*names: str) -> None:
    missing = [n for n in names if n not in INSTALLED]
    if missing:
        hints = "; ".join(ts.TEXT_SOURCES[n].install_hint() for n in missing)
        pytest.skip(f"text sources {missing} not installed ({hints})")


# ----------------------------------------------------------------------------- filters

_LEX = frozenset(
    [
        "the",
        "cat",
        "sat",
        "on",
        "a",
        "mat",
        "and",
        "dog",
        "ran",
        "home",
        "quickly",
        "it",
        "was",
        "big",
        "red",
        "i",
    ]
)


@pytest.mark.parametrize(
    "raw",
    [
        "See http://example.com for the cat",
        "The cat sat on the NASA mat",
        "The cat sat on the mat, e.g. the red one",
        "Mr. Cat sat on the mat quickly",
        "if (cat) { sat = mat; }",
        "the cat sat . . . on the mat",
        "Кошка сидела на коврике и ела",
        "the cat sat on a mat 12345 times",
        "the cat",  # too short
        " ".join(["the cat sat on a mat"] * 5),  # too long
        "der Hund lief schnell nach Hause heute",  # mostly unknown words
    ],
)
def test_clean_sentence_rejects_junk(raw: str) -> None:
    assert ts.clean_sentence(raw, _LEX) is None


def test_clean_sentence_normalises() -> None:
    out = ts.clean_sentence("The cat sat on a mat; the dog ran home!", _LEX)
    assert out == "the cat sat on a mat the dog ran home"
    assert ts.clean_sentence("The dog ran home quickly, it was big.", _LEX, min_words=4) is not None


def test_missing_source_names_package(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    spec = dataclasses.replace(ts.TEXT_SOURCES["fortunes"], root=str(tmp_path / "nowhere"))
    monkeypatch.setitem(ts.TEXT_SOURCES, "fortunes", spec)
    with pytest.raises(ts.TextSourceError, match="apt-get install fortunes fortunes-min"):
        ts.load_sentences("fortunes")
    assert "fortunes" not in ts.available_sources()
    with pytest.raises(ts.TextSourceError, match="unknown text source"):
        ts.load_sentences("no-such-source")


# ----------------------------------------------------------------------------- real sources


@pytest.mark.parametrize("name", list(ts.TEXT_SOURCES))
def test_source_sentences_fit_tokenizer_and_length(name: str) -> None:
    _need(name)
    sents = ts.load_sentences(name)
    assert len(sents) > 5000
    assert len(set(sents)) == len(sents)
    for i, s in enumerate(sents):
        assert set(s) <= ALPHABET, s
        assert i % 10 or normalize_text(s) == s  # idempotent (checked on a sample: speed)
        assert ts.MIN_WORDS <= len(s.split()) <= ts.MAX_WORDS, s
    short = ts.load_sentences(name, min_words=5, max_words=8)
    assert short and all(5 <= len(s.split()) <= 8 for s in short)
    assert set(short) <= set(sents)


def test_load_is_deterministic_without_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    _need("wordnet", "fortunes")
    first = ts.load_sentences("fortunes")
    monkeypatch.setenv("SEQREC_TEXT_CACHE", "0")
    monkeypatch.setattr(ts, "_CACHE", {k: v for k, v in ts._CACHE.items() if k[0] == "lexicon"})
    assert ts.load_sentences("fortunes") == first


def test_twenty_thousand_distinct_words_in_training_text() -> None:
    _need("wordnet", "gcide", "fortunes")
    splits = ts.split_sentences(ts.load_all_sources(), seed=0, counts=ts.DEFAULT_COUNTS,
                                held_out_sources=ts.DEFAULT_HELD_OUT)  # fmt: skip
    train_stats = ts.vocabulary_stats(splits["train"])
    assert train_stats["distinct_words"] >= 20_000
    test_stats = ts.vocabulary_stats(splits["test"], reference=splits["train"])
    assert 0.0 < test_stats["oov_rate"] < 0.1
    assert {src for _, src in splits["test"]} >= {"fortunes"}
    assert all(src != "fortunes" for split in ("train", "dev") for _, src in splits[split])


# ----------------------------------------------------------------------------- splits


def _toy_sources() -> dict[str, list[str]]:
    return {
        "a": [f"alpha sentence number {i} here" for i in range(400)],
        "b": [f"Bravo Sentence number {i} here!" for i in range(300)] + ["shared words in both"],
        "c": [f"charlie held out line {i} now" for i in range(200)] + ["Shared words, in both."],
    }


def test_split_disjoint_deterministic_and_held_out() -> None:
    counts = {"train": 500, "dev": 50, "test": 100}
    splits = ts.split_sentences(_toy_sources(), seed=3, counts=counts, held_out_sources=("c",))
    assert splits == ts.split_sentences(_toy_sources(), seed=3, counts=counts,
                                        held_out_sources=("c",))  # fmt: skip
    assert splits != ts.split_sentences(_toy_sources(), seed=4, counts=counts,
                                        held_out_sources=("c",))  # fmt: skip
    assert {k: len(v) for k, v in splits.items()} == counts
    keys = {k: {normalize_text(s) for s, _ in v} for k, v in splits.items()}
    assert sum(len(v) for v in keys.values()) == sum(counts.values())
    assert not keys["train"] & keys["dev"] and not keys["train"] & keys["test"]
    assert not keys["dev"] & keys["test"]
    held = [src for _, src in splits["test"] if src == "c"]
    assert len(held) == 50
    assert all(src != "c" for k in ("train", "dev") for _, src in splits[k])
    assert "shared words in both" not in keys["train"] | keys["dev"]  # claimed by held-out "c"
    assert all(set(s) <= ALPHABET for v in splits.values() for s, _ in v)


def test_split_template_share_and_errors() -> None:
    counts = {"train": 200, "test": 40}
    splits = ts.split_sentences(_toy_sources(), seed=0, counts=counts, template_fraction=0.25)
    assert sum(src == "template" for _, src in splits["train"]) == 50
    assert sum(src == "template" for _, src in splits["test"]) == 10
    assert all(set(s) <= ALPHABET for v in splits.values() for s, _ in v)
    with pytest.raises(ValueError, match="only"):
        ts.split_sentences(_toy_sources(), seed=0, counts={"train": 10_000})
    with pytest.raises(ValueError, match="not in"):
        ts.split_sentences(_toy_sources(), seed=0, counts=counts, held_out_sources=("zzz",))


def test_vocabulary_stats() -> None:
    stats = ts.vocabulary_stats(["a b c", ("a d", "x")], reference=["a b"])
    assert stats["sentences"] == 2 and stats["running_words"] == 5
    assert stats["distinct_words"] == 4 and stats["mean_words"] == 2.5
    assert stats["oov_running"] == 2 and stats["oov_distinct"] == 2
    assert stats["oov_rate"] == pytest.approx(0.4) and stats["oov_type_rate"] == 0.5
    assert ts.sentences_to_reach(["a b", "b c", "d"], 3) == 2
    assert ts.sentences_to_reach(["a"], 3) is None
