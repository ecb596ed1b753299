"""The modified Kneser-Ney ARPA writer and the ARPA checker (pipeline.decoding.ngram)."""

import gzip
import math

import pytest

from pipeline.decoding.ngram import (
    BOS,
    EOS,
    FALLBACK_DISCOUNTS,
    KENLM_BINARY_MAGIC,
    UNK,
    ArpaError,
    _discounts,
    build_kneser_ney,
    check_arpa,
    count_ngrams,
    read_arpa,
)

SENTS = ["a b", "a c", "b"]


def test_counts_pad_sentences_and_skip_empty_ones():
    uni, bi = count_ngrams(["a b", "", "  ", "a"], 2)
    assert uni == {("a",): 2, ("b",): 1, (EOS,): 2}  # <s> alone is not counted
    assert bi == {(BOS, "a"): 2, ("a", "b"): 1, ("b", EOS): 1, ("a", EOS): 1}


def test_bigram_probabilities_match_a_hand_computation():
    """Sentences "a b", "a c", "b" with discounts D = 0.5 / 1 / 1.5 for counts 1 / 2 / 3+.

    Adjusted unigram counts (distinct words to the left): a 1 (<s>), b 2 (a, <s>), c 1 (a),
    </s> 2 (b, c); total 6.
    Unigram: p(w) = (a(w) - D) / 6 + gamma0 / |V|, |V| = 5 (a, b, c, </s>, <unk>),
    gamma0 = (0.5 * 2 + 1.0 * 2) / 6 = 0.5 (two words with count 1, two with count 2).
    """
    m = build_kneser_ney(SENTS, 2, discounts=[(0.5, 1.0, 1.5)] * 2)
    p_uni = {"a": (1 - 0.5) / 6 + 0.5 / 5, "b": (2 - 1.0) / 6 + 0.5 / 5, "c": (1 - 0.5) / 6 + 0.5 / 5,
             EOS: (2 - 1.0) / 6 + 0.5 / 5, UNK: 0.5 / 5}  # fmt: skip
    for w, p in p_uni.items():
        assert m.log10_prob(w) == pytest.approx(math.log10(p), abs=1e-6)
    assert sum(p_uni.values()) == pytest.approx(1.0)
    # Bigrams after "a": a b (1), a c (1); denominator 2, gamma(a) = (0.5 + 0.5) / 2 = 0.5.
    assert m.log10_prob("b", ["a"]) == pytest.approx(math.log10(0.5 / 2 + 0.5 * p_uni["b"]), abs=1e-6)
    assert m.log10_prob(EOS, ["a"]) == pytest.approx(math.log10(0.5 * p_uni[EOS]), abs=1e-6)
    # After <s>: <s> a (2), <s> b (1): raw counts, denominator 3, gamma = (1.0 + 0.5) / 3.
    assert m.log10_prob("a", [BOS]) == pytest.approx(math.log10((2 - 1.0) / 3 + 0.5 * p_uni["a"]), abs=1e-6)
    assert m.log10_prob("c", [BOS]) == pytest.approx(math.log10(0.5 * p_uni["c"]), abs=1e-6)


def _contexts(m):
    ctxs = [()] + [g for n in range(m.order - 1) for g in m.grams[n] if g[-1] != EOS]
    return ctxs


@pytest.mark.parametrize("prune", [None, [0, 1, 1], [0, 0, 1]])
def test_every_context_sums_to_one_with_and_without_pruning(prune):
    sents = ["the cat sat", "the cat ran", "a dog sat", "the dog sat down", "a cat sat down", "the cat sat"]
    m = build_kneser_ney(sents, 3, prune=prune)
    words = [w for w in m.vocabulary if w != BOS]
    for ctx in _contexts(m):
        assert sum(10 ** m.log10_prob(w, ctx) for w in words) == pytest.approx(1.0, abs=1e-6), ctx
    if prune == [0, 1, 1]:
        assert ("the", "cat") in m.grams[1] and ("a", "dog") not in m.grams[1]  # count 2 kept, 1 pruned
        assert all(c > 1 for c in [count_ngrams(sents, 3)[2][g] for g in m.grams[2]])


def test_discounts_follow_the_counts_of_counts_and_fall_back_on_tiny_data():
    from collections import Counter

    adjusted = Counter({f"w{i}": c for i, c in enumerate([1] * 10 + [2] * 5 + [3] * 3 + [4] * 2)})
    d1, d2, d3 = _discounts(adjusted)
    y = 10 / (10 + 2 * 5)
    assert (d1, d2, d3) == pytest.approx((1 - 2 * y * 5 / 10, 2 - 3 * y * 3 / 5, 3 - 4 * y * 2 / 3))
    assert _discounts(Counter({"a": 1, "b": 2})) == FALLBACK_DISCOUNTS


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="order"):
        build_kneser_ney(SENTS, 0)
    with pytest.raises(ValueError, match="prune"):
        build_kneser_ney(SENTS, 3, prune=[1, 1, 1])
    with pytest.raises(ValueError, match="must not decrease"):
        build_kneser_ney(SENTS, 3, prune=[0, 2, 1])
    with pytest.raises(ValueError, match="no words"):
        build_kneser_ney(["", " "], 2)


@pytest.mark.parametrize("name", ["lm.arpa", "lm.arpa.gz"])
def test_arpa_round_trip_and_kenlm_agrees(tmp_path, name):
    m = build_kneser_ney(["the cat sat", "the dog sat", "a cat ran"], 3)
    path = tmp_path / name
    m.write_arpa(path)
    info = check_arpa(path)
    assert info.order == 3 and info.counts == tuple(len(g) for g in m.grams) and not info.binary
    assert set(info.words) == {UNK, BOS, EOS, "the", "cat", "sat", "dog", "a", "ran"}
    back = read_arpa(path)
    for ctx, w in [((), "cat"), (("the",), "cat"), (("the", "cat"), "sat"), (("a", "dog"), "sat"), (("x",), "y")]:
        assert back.log10_prob(w, ctx) == pytest.approx(m.log10_prob(w, ctx), abs=1e-5)
    pytest.importorskip("flashlight.lib.text.decoder.kenlm")
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    from pipeline.decoding.beam import quiet_stderr

    words = Dictionary()
    for w in ["the", "cat", "sat", "dog", "zebra", UNK]:
        words.add_entry(w)
    with quiet_stderr():
        kenlm = KenLM(str(path), words)
    state, history = kenlm.start(False), [BOS]
    for w in ["the", "cat", "sat", "zebra"]:  # zebra is unknown to the LM
        state, score = kenlm.score(state, words.get_index(w))
        assert score == pytest.approx(m.log10_prob(w, history), abs=1e-4)  # KenLM scores in log10
        history.append(w)


def test_check_arpa_names_the_file_and_the_problem(tmp_path):
    m = build_kneser_ney(["a b c", "a c"], 3)
    good = tmp_path / "good.arpa"
    m.write_arpa(good)
    text = good.read_text()
    cases = {
        "missing.arpa": None,
        "empty.arpa": "",
        "truncated.arpa": text[: len(text) // 2],
        "noend.arpa": text.replace("\\end\\", ""),
        "prose.arpa": "hello, this is not a language model\n",
        "badnum.arpa": text.replace("\\2-grams:\n-", "\\2-grams:\nx"),
        "badcount.arpa": text.replace("ngram 1=", "ngram 1=9"),
    }
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_text(content)
        with pytest.raises(ArpaError) as exc:
            check_arpa(tmp_path / name)
        assert str(tmp_path / name) in str(exc.value) and "\n" not in str(exc.value)
    with gzip.open(tmp_path / "cut.arpa.gz", "wb") as f:
        f.write(text.encode())
    (tmp_path / "cut.arpa.gz").write_bytes((tmp_path / "cut.arpa.gz").read_bytes()[:40])
    with pytest.raises(ArpaError, match="cut.arpa.gz"):
        check_arpa(tmp_path / "cut.arpa.gz")
    (tmp_path / "bin.lm").write_bytes(KENLM_BINARY_MAGIC + b"\0" * 16)
    assert check_arpa(tmp_path / "bin.lm").binary
