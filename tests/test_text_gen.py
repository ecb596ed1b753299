"""Tests for data_prep.corpora.text_gen: number words, the normaliser and the sentence generator."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_prep.corpora.text_gen import generate_sentences, load_lexicon
from data_prep.text_norm import (
    clock_to_words,
    normalize_text,
    number_to_words,
    ordinal_to_words,
    year_to_words,
)

CLEAN = re.compile(r"^([a-z']+( [a-z']+)*)?$")


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (20, "twenty"),
        (23, "twenty three"),
        (100, "one hundred"),
        (105, "one hundred five"),
        (999, "nine hundred ninety nine"),
        (1000, "one thousand"),
        (20_019, "twenty thousand nineteen"),
        (1_000_001, "one million one"),
        (3_400_000_000, "three billion four hundred million"),
        (-12, "minus twelve"),
    ],
)
def test_number_to_words(n: int, words: str) -> None:
    assert number_to_words(n) == words


def test_number_too_large() -> None:
    with pytest.raises(ValueError, match="too large"):
        number_to_words(10**15)


@pytest.mark.parametrize(
    ("n", "words"),
    [(1, "first"), (2, "second"), (3, "third"), (5, "fifth"), (8, "eighth"), (9, "ninth"),
     (12, "twelfth"), (20, "twentieth"), (21, "twenty first"), (40, "fortieth"),
     (100, "one hundredth")],
)  # fmt: skip
def test_ordinals(n: int, words: str) -> None:
    assert ordinal_to_words(n) == words


@pytest.mark.parametrize(
    ("year", "words"),
    [(1984, "nineteen eighty four"), (1905, "nineteen oh five"), (1900, "nineteen hundred"),
     (2000, "two thousand"), (2005, "two thousand five"), (2010, "twenty ten"),
     (2024, "twenty twenty four"), (1000, "one thousand"), (1066, "ten sixty six"),
     (800, "eight hundred")],
)  # fmt: skip
def test_years(year: int, words: str) -> None:
    assert year_to_words(year) == words


def test_clock() -> None:
    assert clock_to_words(7, 0) == "seven o'clock"
    assert clock_to_words(7, 5) == "seven oh five"
    assert clock_to_words(11, 45) == "eleven forty five"


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("Hello, World!", "hello world"),
        ("It's twenty-three o'clock.", "it's twenty three o'clock"),
        ("I have 23 apples", "i have twenty three apples"),
        ("the 21st of May, 1984", "the twenty first of may nineteen eighty four"),
        ("3.14 is pi", "three point one four is pi"),
        ("1,000,000 users", "one million users"),
        ("1,2,3", "one two three"),
        ("50% off", "fifty percent off"),
        ("$5.50 and £1 and €20", "five dollars and fifty cents and one pound and twenty euros"),
        ("at 7:30 or 12:05", "at seven thirty or twelve oh five"),
        ("the 1990s", "the nineteen nineties"),
        ("room 007", "room zero zero seven"),
        ("it was -5 degrees", "it was minus five degrees"),
        ("well-known  café", "well known cafe"),
        ("\u2018quoted\u2019 don\u2019t", "quoted don't"),
        ("'tis the students' books", "tis the students books"),
        ("A&B", "a and b"),
        ("MP3 at 3pm", "mp three at three pm"),
        ("Straße Æsop", "strasse aesop"),
        ("  \t\n ", ""),
        ("?!...", ""),
    ],
)
def test_normalize_text(raw: str, norm: str) -> None:
    assert normalize_text(raw) == norm


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_normalize_text_clean_and_idempotent(raw: str) -> None:
    out = normalize_text(raw)
    assert CLEAN.match(out), out
    assert normalize_text(out) == out


def test_lexicon_is_consistent() -> None:
    lex = load_lexicon()
    assert len(lex.names) > 50 and len(lex.places) > 30
    assert set(lex.times) == {"past", "future", "habit", "any"} and all(lex.times.values())
    for cls, nouns in lex.nouns.items():
        assert nouns and lex.adjectives[cls], cls
    for verb in lex.transitive:
        assert verb.objects and all(cls in lex.nouns for cls in verb.objects), verb
    assert lex.intransitive


def test_generate_sentences_distinct_and_clean() -> None:
    sents = generate_sentences(500, seed=3)
    assert len(sents) == 500
    norms = [normalize_text(s) for s in sents]
    assert len(set(norms)) == 500
    for sent, norm in zip(sents, norms, strict=True):
        assert sent[0].isupper() and sent[-1] in ".?", sent
        assert not re.search(r"\d", sent), sent  # numbers are already words
        assert 3 <= len(norm.split()) <= 16
        assert CLEAN.match(norm)
    lengths = {len(n.split()) for n in norms}
    assert len(lengths) >= 10  # varied lengths, not one template


def test_generate_sentences_deterministic() -> None:
    assert generate_sentences(200, seed=7) == generate_sentences(200, seed=7)
    assert generate_sentences(200, seed=7) != generate_sentences(200, seed=8)
    assert generate_sentences(50, seed=7) == generate_sentences(200, seed=7)[:50]


def test_ten_thousand_distinct() -> None:
    sents = generate_sentences(10_000, seed=0)
    assert len({normalize_text(s) for s in sents}) == 10_000


def test_word_bounds() -> None:
    sents = generate_sentences(100, seed=1, min_words=8, max_words=10)
    assert all(8 <= len(normalize_text(s).split()) <= 10 for s in sents)
    assert generate_sentences(0, seed=1) == []


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="min_words"):
        generate_sentences(5, seed=0, min_words=5, max_words=4)
    with pytest.raises(ValueError, match="n must be"):
        generate_sentences(-1, seed=0)
    with pytest.raises(ValueError, match="could only generate"):
        generate_sentences(3, seed=0, min_words=40, max_words=50)
