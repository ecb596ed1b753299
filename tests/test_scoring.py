"""Tests for WER/CER scoring and the recogs/errs writers."""

from __future__ import annotations

import pytest

from pipeline.scoring import error_rates, write_errs, write_recogs


def test_one_substitution_in_four_words() -> None:
    r = error_rates(["the cat sat down"], ["the cat sit down"])
    assert r["wer"] == pytest.approx(0.25)
    assert r["word_errors"] == {"sub": 1, "del": 0, "ins": 0}
    assert r["num_utts"] == 1 and r["num_words"] == 4
    # 16 characters (spaces included); "sat" -> "sit" is one character substitution.
    assert r["num_chars"] == 16
    assert r["cer"] == pytest.approx(1 / 16)


def test_corpus_level_counts() -> None:
    refs = ["a b c d", "hello world", "one two three"]
    hyps = ["a b c d", "hello", "one two two three"]
    r = error_rates(refs, hyps)
    assert r["word_errors"] == {"sub": 0, "del": 1, "ins": 1}
    assert r["num_words"] == 9
    assert r["wer"] == pytest.approx(2 / 9)


def test_whitespace_is_normalised() -> None:
    r = error_rates(["  a   b\tc "], ["a b c"])
    assert r["wer"] == 0.0 and r["cer"] == 0.0 and r["num_chars"] == 5


def test_empty_inputs() -> None:
    r = error_rates([], [])
    assert r["wer"] == 0.0 and r["cer"] == 0.0 and r["num_utts"] == 0 and r["num_words"] == 0
    # An empty reference among others: its hypothesis words are insertions.
    r = error_rates(["a b", ""], ["a b", "x y"])
    assert r["word_errors"] == {"sub": 0, "del": 0, "ins": 2}
    assert r["wer"] == pytest.approx(1.0)
    # An empty hypothesis deletes everything.
    r = error_rates(["a b c"], [""])
    assert r["word_errors"] == {"sub": 0, "del": 3, "ins": 0}
    assert r["wer"] == 1.0 and r["cer"] == 1.0
    assert error_rates([""], [""])["wer"] == 0.0
    with pytest.raises(ValueError, match="references"):
        error_rates(["a"], [])


def test_write_recogs(tmp_path) -> None:
    path = tmp_path / "exp" / "recogs-dev.txt"
    write_recogs(path, ["u2", "u1"], ["b c", "a\nb"], ["b", "a b"])
    assert path.read_text().splitlines() == [
        "u1\tref: a b",
        "u1\thyp: a b",
        "u2\tref: b c",
        "u2\thyp: b",
    ]
    assert [p.name for p in path.parent.iterdir()] == ["recogs-dev.txt"]
    with pytest.raises(ValueError, match="duplicate"):
        write_recogs(path, ["u1", "u1"], ["a", "b"], ["a", "b"])


def test_write_errs(tmp_path) -> None:
    ids = ["u1", "u2", "u3"]
    refs = ["a b c d", "", "hello world"]
    hyps = ["a x c d", "foo", "hello"]
    rates = error_rates(refs, hyps)
    path = tmp_path / "errs-dev.txt"
    write_errs(path, ids, refs, hyps, rates)
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0] == "%WER 50.00 [ 3 / 6, 1 ins, 1 del, 1 sub ]"
    assert lines[1].startswith("%CER ")
    assert "u1:\t[1 err]\ta (b->x) c d" in lines
    assert "u2:\t[1 err]\t(*->foo)" in lines
    assert "u3:\t[1 err]\thello (world->*)" in lines
    assert "1\tb -> x" in lines and "1\tworld" in lines and "1\tfoo" in lines
    # Computing the rates internally gives the same file.
    path2 = tmp_path / "errs-dev2.txt"
    write_errs(path2, ids, refs, hyps)
    assert path2.read_text() == text
