"""Tests for the CTC character tokenizer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.tokenizer import CharTokenizer, TokenizerError


def test_default_vocab() -> None:
    tok = CharTokenizer()
    assert tok.vocab_size == len(tok) == 29
    assert tok.tokens[:4] == ["<blank>", " ", "'", "a"]
    assert tok.tokens[-1] == "z"
    assert tok.blank_id == 0
    assert tok.space_id == 1


def test_encode_decode_round_trip() -> None:
    tok = CharTokenizer()
    ids = tok.encode("it's a test")
    assert ids[:4] == [tok.tokens.index("i"), tok.tokens.index("t"), 2, tok.tokens.index("s")]
    assert 0 not in ids
    assert tok.decode(ids) == "it's a test"


def test_normalisation() -> None:
    tok = CharTokenizer()
    assert tok.normalize("  Hello,   WORLD!\n\tNew-line 42 ") == "hello world newline"
    assert tok.decode(tok.encode("  Hello,   WORLD!\n\tNew-line 42 ")) == "hello world newline"
    assert tok.encode("") == []
    assert tok.encode("123 !?") == []


def test_decode_ignores_blanks_keeps_repeats_and_cleans_spaces() -> None:
    tok = CharTokenizer()
    a, b = tok.tokens.index("a"), tok.tokens.index("b")
    assert tok.decode([0, a, a, 0, b]) == "aab"
    assert tok.decode([1, a, 1, 1, 0, 1, b, 1]) == "a b"
    with pytest.raises(TokenizerError, match="outside"):
        tok.decode([29])


def test_list_round_trip_and_validation() -> None:
    tok = CharTokenizer()
    again = CharTokenizer.from_list(tok.to_list())
    assert again == tok
    assert again.to_list() is not again.tokens
    custom = CharTokenizer.from_list(["<blank>", " ", "a", "b"])
    assert custom.encode("abc ba") == [2, 3, 1, 3, 2]
    with pytest.raises(TokenizerError, match="start with the blank"):
        CharTokenizer.from_list([" ", "<blank>", "a"])
    with pytest.raises(TokenizerError, match="more than once"):
        CharTokenizer.from_list(["<blank>", " ", "a", "a"])
    with pytest.raises(TokenizerError, match="no space"):
        CharTokenizer.from_list(["<blank>", "a"])
    with pytest.raises(TokenizerError, match="single character"):
        CharTokenizer.from_list(["<blank>", " ", "ab"])
    with pytest.raises(TokenizerError):
        CharTokenizer.from_list([])


def test_uppercase_token_set_keeps_case() -> None:
    tok = CharTokenizer(["<blank>", " ", "A", "b"])
    assert tok.normalize("A a b B") == "A b"


@given(st.text(max_size=40))
def test_round_trip_is_normalisation(text: str) -> None:
    tok = CharTokenizer()
    norm = tok.normalize(text)
    assert tok.decode(tok.encode(text)) == norm
    assert tok.normalize(norm) == norm
    assert "  " not in norm and norm == norm.strip()
