"""Hotwords: the list's format and limits, words added to the lexicon and boosted in the search,
both engines and the CLI (``--hotwords FILE``)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from pipeline.decoding.flashlight import FlashlightSearch
from pipeline.decoding.hotwords import (
    DEFAULT_WEIGHT,
    Hotword,
    HotwordError,
    as_hotwords,
    hotword_boosts,
    read_hotwords,
)
from pipeline.decoding.lexicon import read_lexicon, spell_words, write_lexicon
from pipeline.decoding.ngram import build_kneser_ney
from pipeline.decoding.word_lm import WordLM, apply_hotwords
from pipeline.limits import LimitError, Limits, use_limits
from pipeline.tokenizer import CharTokenizer

TOK = CharTokenizer()
SENTENCES = ["the cat sat on the mat", "the cat ran", "a cat sat", "the dog sat on a mat", "the cat sat"] * 3


def emissions(segments: list[str | dict[str, float]]) -> np.ndarray:
    """(T, V) log-probs: each segment is one frame (a character, or a {character: prob} mix),
    then a blank frame."""
    frames = []
    for seg in segments:
        mix = {seg: 0.9} if isinstance(seg, str) else seg
        p = np.full(TOK.vocab_size, 1e-4)
        for ch, pr in mix.items():
            p[TOK.space_id if ch == " " else TOK.tokens.index(ch)] = pr
        p[0] = max(1e-4, 1 - sum(mix.values()))
        frames.append(p / p.sum())
        blank = np.full(TOK.vocab_size, 1e-4)
        blank[0] = 1.0
        frames.append(blank / blank.sum())
    return np.log(np.stack(frames)).astype(np.float32)


@pytest.fixture(scope="module")
def lm_files(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("lm")
    model = build_kneser_ney(SENTENCES, 3)
    lexicon, _ = spell_words(model.vocabulary, TOK)
    model.write_arpa(tmp / "lm.arpa.gz")
    write_lexicon(tmp / "lexicon.txt", lexicon)
    return tmp / "lm.arpa.gz", tmp / "lexicon.txt"


def _search(lm_files, hotwords=None) -> FlashlightSearch:
    arpa, lexicon = lm_files
    return FlashlightSearch(TOK.tokens, beam_size=16, lm=arpa, lexicon=read_lexicon(lexicon, TOK), lm_weight=1.0,
                            hotwords=hotwords)  # fmt: skip


# --------------------------------------------------------------------------- the list


def test_the_file_format(tmp_path: Path) -> None:
    path = tmp_path / "hot.txt"
    path.write_text("# names\n\nZarnowski\ngrafana loki: 8   # a phrase\n  kubernetes:5.5\nnegative:-2\n")
    got = read_hotwords(path)
    assert [(h.words, h.weight) for h in got] == [
        (("Zarnowski",), DEFAULT_WEIGHT), (("grafana", "loki"), 8.0), (("kubernetes",), 5.5), (("negative",), -2.0),
    ]  # fmt: skip
    assert [h.where for h in got] == [f"{path}:{n}" for n in (3, 4, 5, 6)]


@pytest.mark.parametrize(
    ("line", "expected"),
    [("zorp:abc", "the weight 'abc' is not a number"), ("zorp: nan", "outside"), ("zorp:1e400", "outside"),
     ("zorp:1000", "outside"), (":5", "a weight without a word")],
)  # fmt: skip
def test_a_bad_line_is_one_error_naming_the_file_and_line(tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / "hot.txt"
    path.write_text(f"cat\n# fine\n{line}\n")
    with pytest.raises(HotwordError, match=expected) as info:
        read_hotwords(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: ") and "\n" not in message


def test_the_file_is_read_within_the_limits(tmp_path: Path) -> None:
    many = tmp_path / "many.txt"
    many.write_text("".join(f"w{'x' * k}\n" for k in range(5)))
    with use_limits(Limits().raised(max_lexicon_words=4)), pytest.raises(LimitError, match="--max-lexicon-words"):
        read_hotwords(many)
    long = tmp_path / "long.txt"
    long.write_text("cat\n" + "z" * 300 + "\n")
    with use_limits(Limits().raised(max_line_bytes=100)), pytest.raises(LimitError, match="line 2 .*--max-line-bytes"):
        read_hotwords(long)
    for bad, why in ((tmp_path / "missing.txt", "no such hotwords file"), (tmp_path, "is a directory")):
        with pytest.raises(HotwordError, match=why):
            read_hotwords(bad)
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(HotwordError, match="not UTF-8"):
        read_hotwords(tmp_path / "latin1.txt")


def test_the_api_takes_strings_pairs_entries_and_a_path(tmp_path: Path) -> None:
    (tmp_path / "hot.txt").write_text("zorp:2\n")
    got = as_hotwords(["zorp", "grafana loki:8", ("kubernetes", 3), Hotword(("x",), 1.0), "# nothing"])
    assert [(h.words, h.weight) for h in got] == [
        (("zorp",), DEFAULT_WEIGHT), (("grafana", "loki"), 8.0), (("kubernetes",), 3.0), (("x",), 1.0),
    ]  # fmt: skip
    assert got[1].where == "hotwords[1]"
    assert [(h.words, h.weight) for h in as_hotwords(tmp_path / "hot.txt")] == [(("zorp",), 2.0)]
    assert as_hotwords(None) == [] and as_hotwords([]) == []
    with pytest.raises(TypeError, match="not one string"):
        as_hotwords("zorp")
    with pytest.raises(TypeError, match=r"hotwords\[0\]"):
        as_hotwords([42])
    with pytest.raises(HotwordError, match=r"hotwords\[1\]: the weight 'high' is not a number"):
        as_hotwords(["zorp", ("kubernetes", "high")])
    with use_limits(Limits().raised(max_lexicon_words=2)), pytest.raises(LimitError, match="--max-lexicon-words"):
        as_hotwords(["a", "b", "c"])


def test_words_are_cased_as_the_model_spells_and_unspellable_entries_are_skipped(caplog) -> None:
    entries = as_hotwords(["Zorp:2", "zorp:4", "c++ rocks", "grafana loki:1", "café"])
    with caplog.at_level(logging.WARNING):
        boosts = hotword_boosts(entries, TOK)
    assert boosts == {"zorp": 4.0, "grafana": 1.0, "loki": 1.0}  # the larger weight of "zorp" stays
    assert "hotwords[2]: skipped 'c++ rocks': the model cannot spell '+'" in caplog.text
    assert "hotwords[4]" in caplog.text
    with pytest.raises(HotwordError, match="no hotword can be spelt"):
        hotword_boosts(as_hotwords(["c3po", "r2d2"]), TOK)
    assert hotword_boosts([], TOK) == {}


# --------------------------------------------------------------------------- the search


def test_a_word_outside_the_lexicon_is_decoded_only_as_a_hotword(lm_files) -> None:
    em = emissions([*"the", " ", *"zorp", " ", *"sat"])
    without = _search(lm_files).search(em)[0]
    assert "zorp" not in without.words
    found = _search(lm_files, {"zorp": 0.0}).search(em)[0]  # added, even without a boost
    assert found.words == ["the", "zorp", "sat"] and TOK.decode(found.token_ids) == "the zorp sat"
    boosted = _search(lm_files, {"zorp": 5.0}).search(em)[0]
    assert boosted.words == found.words and boosted.score == pytest.approx(found.score + 5.0, abs=1e-3)


def test_a_boost_changes_which_listed_word_wins(lm_files) -> None:
    # "c" or "m", nearly even: the LM prefers "cat" after "the"; a boost for "mat" overrides it.
    em = emissions([*"the", " ", {"c": 0.46, "m": 0.44}, *"at", " ", *"sat"])
    assert _search(lm_files).search(em)[0].words == ["the", "cat", "sat"]
    assert _search(lm_files, {"mat": 6.0}).search(em)[0].words == ["the", "mat", "sat"]
    assert _search(lm_files, {"cat": -20.0}).search(em)[0].words == ["the", "mat", "sat"]  # discouraged


def test_hotwords_need_a_word_level_search(lm_files) -> None:
    with pytest.raises(ValueError, match="hotwords need a word-level search"):
        FlashlightSearch(TOK.tokens, hotwords={"zorp": 1.0})
    with pytest.raises(ValueError, match="cannot be spelt"):
        _search(lm_files, {"zo-rp": 1.0})


def test_the_lexicon_limit_counts_the_added_words(lm_files) -> None:
    arpa, lexicon = lm_files
    lm = WordLM(arpa, lexicon, lm_weight=1.0, beam_size=16)
    size = len(read_lexicon(lexicon, TOK))
    entries = as_hotwords(["zorp", "cat", "blip"])
    with use_limits(Limits().raised(max_lexicon_words=size + 1)), pytest.raises(LimitError) as info:
        lm.with_hotwords(entries, TOK)
    message = str(info.value)
    assert message.startswith(f"{lexicon}: the lexicon plus 2 hotwords") and "--max-lexicon-words" in message
    boosted = lm.with_hotwords(entries, TOK)
    assert dict(boosted.hotwords) == {"zorp": DEFAULT_WEIGHT, "cat": DEFAULT_WEIGHT, "blip": DEFAULT_WEIGHT}
    assert "zorp" in boosted.search(TOK).words and "zorp" not in lm.search(TOK).words
    assert apply_hotwords(lm, [], TOK) is lm and apply_hotwords(None, None, TOK) is None
    with pytest.raises(HotwordError, match="need a word-level LM"):
        apply_hotwords(None, ["zorp"], TOK)


# --------------------------------------------------------------------------- engines and CLI


@pytest.fixture(scope="module")
def lm_bundle(tmp_path_factory, lm_files) -> Path:
    """A tiny untrained speech bundle with its ONNX graph and a word LM."""
    from bundles import tiny_speech_bundle

    from pipeline.io_utils import file_sha256

    arpa, lexicon = lm_files
    lm = {
        "arpa": "lm.arpa.gz", "lexicon": "lexicon.txt",
        "sha256": {"lm.arpa.gz": file_sha256(arpa), "lexicon.txt": file_sha256(lexicon)},
        "order": 3, "lm_weight": 1.0, "word_score": 0.0, "beam_size": 8, "beam_size_token": 8,
    }  # fmt: skip
    return tiny_speech_bundle(tmp_path_factory.mktemp("hot") / "bundle", graph=True, extra={"lm": lm},
                              files={"lm.arpa.gz": arpa, "lexicon.txt": lexicon})  # fmt: skip


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(int(1.5 * 16000)) / 16000
    bursts = np.clip(np.sin(2 * np.pi * 3 * t), 0, None)
    wave = 0.3 * np.sin(2 * np.pi * 180 * t) * bursts + 0.01 * rng.standard_normal(t.size)
    path = tmp_path_factory.mktemp("wav") / "a.wav"
    sf.write(path, wave.astype(np.float32), 16000, subtype="PCM_16")
    return path


def _built(search):
    """The lite engine's search, once its loader thread has built it."""
    return search.get() if hasattr(search, "get") else search


def test_both_engines_take_hotwords_and_agree(lm_bundle, wav) -> None:
    import torch

    from pipeline.inference.engines import load_transcriber

    hot = ["zorp:3", ("dog", 2.0)]
    lite = load_transcriber(lm_bundle, engine="lite", hotwords=hot)
    torch_engine = load_transcriber(lm_bundle, engine="torch", hotwords=hot)
    assert (lite.engine, torch_engine.engine) == ("lite", "torch")
    for t in (lite, torch_engine):
        assert dict(t.lm.hotwords) == {"zorp": 3.0, "dog": 2.0}
    # the same search in both: the added word decodes from emissions that spell it
    em = emissions([*"the", " ", *"zorp", " ", *"sat"])
    hyp = torch_engine._decoder(torch_engine._beam(None)).decode(torch.from_numpy(em)[None])[0]
    search = _built(lite._search)
    assert "zorp" in search.words
    assert TOK.decode(search.search(em)[0].token_ids) == TOK.decode(hyp.token_ids) == "the zorp sat"
    got = [r.to_dict() for r in lite.transcribe([wav], skip_silence=False)]
    assert got == [r.to_dict() for r in torch_engine.transcribe([wav], skip_silence=False)]
    with pytest.raises(HotwordError, match="need a word-level LM"):
        load_transcriber(lm_bundle, engine="lite", lm="none", hotwords=["zorp"])
    with pytest.raises(HotwordError, match="need a word-level LM"):
        load_transcriber(lm_bundle, engine="torch", lm="none", hotwords=["zorp"])


def test_cli_hotwords_file(lm_bundle, wav, tmp_path, capsys) -> None:
    from bundles import run_cli

    hot = tmp_path / "hot.txt"
    hot.write_text("zorp\ndog: 2\n")
    code, rows, errors, _ = run_cli(capsys, "transcribe", "--model", str(lm_bundle), "--hotwords", str(hot),
                                    "--format", "json", str(wav))  # fmt: skip
    assert code == 0 and not errors and rows[0]["path"] == str(wav)
    missing = tmp_path / "nope.txt"
    code, rows, errors, err = run_cli(capsys, "transcribe", "--model", str(lm_bundle), "--hotwords", str(missing),
                                      str(wav))  # fmt: skip
    assert code == 2 and not rows and errors == [f"seqrec: error: {missing}: no such hotwords file"]
    assert err.count("\n") == 1
    hot.write_text("zorp\ndog: lots\n")
    code, _, errors, _ = run_cli(capsys, "transcribe", "--model", str(lm_bundle), "--hotwords", str(hot), str(wav))
    assert code == 2 and errors == [f"seqrec: error: {hot}:2: the weight 'lots' is not a number"]


# --------------------------------------------------------------------------- scoring


def test_biased_error_rates_split_the_errors() -> None:
    from pipeline.scoring import biased_error_rates

    got = biased_error_rates(["the cat sat on kubernetes", "zorp and zorp"], ["the cat sat on cube nets", "zorp and"],
                             ["kubernetes", "zorp"])  # fmt: skip
    assert got["num_biased"] == 3 and got["num_other"] == 5
    assert got["recall"] == pytest.approx(1 / 3)
    assert got["biased_errors"] == {"sub": 1, "del": 1, "ins": 0}
    assert got["other_errors"] == {"sub": 0, "del": 0, "ins": 1}  # "nets": not a hotword
    assert got["u_wer"] == pytest.approx(1 / 5) and got["u_sub_del"] == 0.0


def test_the_benchmark_set_and_its_table() -> None:
    """recipes/benchmarks/hotwords.py: every sentence holds one or two words the shipped lexicon
    lacks and no other unknown word; the control sentences none."""
    from recipes.benchmarks import hotwords as bench

    known = bench.lexicon_words()
    words = bench.targets(known)
    assert len(words) >= 40 and len(bench.SENTENCES) >= 60 and not set(words) & known
    assert all(w in known for s in bench.CONTROL for w in s.split())
    row = {"recall": 0.5, "b_wer": 0.5, "u_wer": 0.3, "u_sub_del": 0.2, "wer": 0.3, "control_wer": 0.2,
           "search_s_per_file": 0.012, "load_s": 0.5, "num_biased": 81, "num_other": 412}  # fmt: skip
    table = bench.render({"utterances": 62, "control_utterances": 20, "audio_s": 219.7, "targets": words,
                          "runs": {"none": row, "weight 10": row}})  # fmt: skip
    assert "| weight 10 | 0.500 | 0.500 | 0.300 | 0.200 | 0.300 | 0.200 | 12.0 | 0.50 |" in table
