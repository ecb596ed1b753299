"""Word-level decoding: lexicons, the flashlight decoder with a word LM, and loading LMs."""

import logging

import pytest
import torch

from pipeline.decoding.beam import BeamSearchDecoder
from pipeline.decoding.greedy import greedy_decode
from pipeline.decoding.lexicon import (
    LexiconError,
    add_spelling_units,
    read_lexicon,
    spell_words,
    spelling_unit,
    write_lexicon,
)
from pipeline.decoding.ngram import build_kneser_ney
from pipeline.decoding.timestamps import word_timestamps
from pipeline.decoding.word_lm import LMError, WordLM, file_lm
from pipeline.tokenizer import CharTokenizer

TOK = CharTokenizer()
SENTENCES = ["the cat sat on the mat", "the cat ran", "a cat sat", "the dog sat on a mat", "the cat sat"] * 3


def emissions(segments: list[dict[str, float] | str]) -> torch.Tensor:
    """(1, T, V) log-probs: each segment is one frame (a char, or a {char: prob} mix) then a blank frame."""
    frames = []
    for seg in segments:
        mix = {seg: 0.9} if isinstance(seg, str) else seg
        p = torch.full((TOK.vocab_size,), 1e-4)
        for ch, pr in mix.items():
            p[TOK.space_id if ch == " " else TOK.tokens.index(ch)] = pr
        p[0] = max(1e-4, 1 - sum(mix.values()))
        frames.append(p / p.sum())
        blank = torch.full((TOK.vocab_size,), 1e-4)
        blank[0] = 1.0
        frames.append(blank / blank.sum())
    return torch.stack(frames).log().unsqueeze(0)


def lm_files(tmp_path, *, spell: float | None = None, words=None):
    model = build_kneser_ney(SENTENCES, 3)
    lexicon, _ = spell_words(words or model.vocabulary, TOK)
    if spell is not None:
        lexicon = add_spelling_units(lexicon, TOK, model, spell)
    model.write_arpa(tmp_path / "lm.arpa.gz")
    write_lexicon(tmp_path / "lexicon.txt", lexicon)
    return tmp_path / "lm.arpa.gz", tmp_path / "lexicon.txt"


def decode(dec, lp):
    hyp = dec.decode(lp, torch.tensor([lp.size(1)]))[0]
    return TOK.decode(hyp.token_ids), hyp


# An acoustically ambiguous "cat": the model prefers "s" for the vowel.
CST = ["t", "h", "e", " ", "c", {"s": 0.5, "a": 0.4}, "t", " ", "s", "a", "t"]


def test_the_word_lm_corrects_a_misspelt_word_that_greedy_keeps(tmp_path):
    lp = emissions(CST)
    greedy = TOK.decode(greedy_decode(lp, torch.tensor([lp.size(1)]), blank=0)[0].token_ids)
    assert greedy == "the cst sat"
    arpa, lex = lm_files(tmp_path)
    dec = WordLM(arpa, lex, lm_weight=1.0, word_score=0.0, beam_size=16).decoder(TOK)
    text, hyp = decode(dec, lp)
    assert text == "the cat sat"
    words = word_timestamps(hyp, TOK, frame_shift_s=0.04, num_frames=lp.size(1))
    assert [w["word"] for w in words] == ["the", "cat", "sat"]
    assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:], strict=False))
    assert words[1]["start"] == pytest.approx(8 * 0.04)  # "c" is the 5th segment: frame 8


def test_an_unlisted_word_is_spelt_through_the_spelling_units_only(tmp_path):
    lp = emissions([*"the", " ", *"zorp", " ", *"sat"])
    (tmp_path / "a").mkdir()
    arpa, lex = lm_files(tmp_path / "a", spell=-1.0)
    text, _ = decode(WordLM(arpa, lex, lm_weight=1.0, beam_size=16).decoder(TOK), lp)
    assert text == "the zorp sat"
    (tmp_path / "b").mkdir()
    arpa, lex = lm_files(tmp_path / "b")
    text, _ = decode(WordLM(arpa, lex, lm_weight=1.0, beam_size=16).decoder(TOK), lp)
    assert "zorp" not in text  # without the unknown-word path only listed words come out


def test_an_arpa_file_alone_gives_its_words_as_the_lexicon(tmp_path):
    arpa, _ = lm_files(tmp_path)
    lm = file_lm(arpa, TOK)
    assert lm.lexicon is None and "cat" in lm.words
    text, _ = decode(lm.decoder(TOK), emissions(CST))
    assert text == "the cat sat"


def test_lexicon_spelling_drops_foreign_characters_with_a_count(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        lex, dropped = spell_words(["cat", "Café", "naïve", "don't", "cat", "<unk>", "x2"], TOK)
    assert lex == {"cat": ["c", "a", "t", "|"], "don't": ["d", "o", "n", "'", "t", "|"]}
    assert dropped == 3 and "dropped 3 words" in caplog.text
    units = add_spelling_units(lex, TOK)
    assert units[spelling_unit("q")] == ["q"] and len(units) == len(lex) + 26
    write_lexicon(tmp_path / "lex.txt", units)
    assert read_lexicon(tmp_path / "lex.txt", TOK) == units


def test_read_lexicon_counts_foreign_entries_and_refuses_malformed_files(tmp_path, caplog):
    path = tmp_path / "lex.txt"
    path.write_text("cat\tc a t |\ncafé\tc a f é |\n")
    with caplog.at_level(logging.INFO):
        assert read_lexicon(path, TOK) == {"cat": ["c", "a", "t", "|"]}
    assert "dropped 1 entries" in caplog.text
    for name, content in {"bad.txt": "cat c a t\n", "none.txt": "é\té |\n"}.items():
        (tmp_path / name).write_text(content)
        with pytest.raises(LexiconError, match=name):
            read_lexicon(tmp_path / name, TOK)
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(LexiconError, match="UTF-8"):
        read_lexicon(tmp_path / "bin.txt", TOK)


def test_bad_lm_files_give_one_line_errors(tmp_path):
    (tmp_path / "prose.arpa").write_text("not a model\n")
    for path in (tmp_path / "missing.arpa", tmp_path / "prose.arpa"):
        with pytest.raises(LMError) as exc:
            file_lm(path, TOK)
        assert str(path) in str(exc.value) and "\n" not in str(exc.value)
    (tmp_path / "bin.lm").write_bytes(b"mmap lm http://kheafield.com/code" + b"\0" * 64)
    with pytest.raises(LMError, match="KenLM binary"):
        file_lm(tmp_path / "bin.lm", TOK)


def test_the_beam_decoder_checks_its_lexicon_arguments(tmp_path):
    arpa, lex = lm_files(tmp_path)
    with pytest.raises(ValueError, match="needs a word-level lm"):
        BeamSearchDecoder(TOK.tokens, lexicon=lex)
    with pytest.raises(FileNotFoundError, match="lexicon file not found"):
        BeamSearchDecoder(TOK.tokens, lm=arpa, lexicon=tmp_path / "nope.txt")
