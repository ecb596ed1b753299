"""Tests for greedy and beam CTC decoding, word timestamps and forced alignment."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.decoding import (
    BeamSearchDecoder,
    CTCHypothesis,
    forced_align_words,
    greedy_decode,
    word_timestamps,
)
from pipeline.decoding.timestamps import AlignmentError
from pipeline.tokenizer import CharTokenizer

TOK = CharTokenizer()
V = TOK.vocab_size


def path_ids(spec: str) -> list[int]:
    """A frame-level path: '-' is blank, '|' is space, other characters are themselves."""
    return [0 if c == "-" else TOK.space_id if c == "|" else TOK.tokens.index(c) for c in spec]


def peaked(spec: str, *, peak: float = 0.9) -> torch.Tensor:
    """(T, V) log-probs with ``peak`` on the path's label and the rest spread evenly."""
    ids = path_ids(spec)
    probs = torch.full((len(ids), V), (1.0 - peak) / (V - 1))
    probs[torch.arange(len(ids)), torch.tensor(ids)] = peak
    return probs.log()


@pytest.fixture(scope="module")
def beam() -> BeamSearchDecoder:
    return BeamSearchDecoder(TOK.to_list(), beam_size=8)


def test_greedy_collapses_repeats_and_blanks() -> None:
    lp = peaked("-hh-e-ll-l|-oo")[None]
    (hyp,) = greedy_decode(lp, torch.tensor([lp.shape[1]]))
    assert TOK.decode(hyp.token_ids) == "hell o"
    assert hyp.frames == [1, 4, 6, 9, 10, 12]
    assert hyp.score == pytest.approx(lp.shape[1] * math.log(0.9), rel=1e-5)


def test_greedy_respects_lengths_in_a_padded_batch() -> None:
    a, b = peaked("-a-b-c"), peaked("xy-")
    lp = torch.full((2, 6, V), math.log(1.0 / V))
    lp[0], lp[1, :3] = a, b
    lp[1, 3:, TOK.tokens.index("z")] = 0.0  # padding that would decode as "z" if not masked
    hyps = greedy_decode(lp, torch.tensor([6, 3]))
    assert [TOK.decode(h.token_ids) for h in hyps] == ["abc", "xy"]
    assert hyps[1].frames == [0, 1]
    assert hyps[1].score == pytest.approx(3 * math.log(0.9), rel=1e-5)
    assert greedy_decode(lp, torch.tensor([0, 0]))[0].token_ids == []
    with pytest.raises(ValueError, match="lengths"):
        greedy_decode(lp, torch.tensor([7, 3]))
    with pytest.raises(ValueError, match="lengths"):
        greedy_decode(lp, torch.tensor([6]))
    with pytest.raises(ValueError, match=r"\(B, T, V\)"):
        greedy_decode(lp[0], torch.tensor([6]))


def test_greedy_handles_infinite_padding() -> None:
    lp = torch.full((1, 5, V), float("-inf"))
    lp[0, :2] = peaked("ab")
    (hyp,) = greedy_decode(lp, torch.tensor([2]))
    assert hyp.token_ids == path_ids("ab")
    assert math.isfinite(hyp.score)


def test_beam_matches_greedy_on_peaked_input(beam: BeamSearchDecoder) -> None:
    specs = ["-hh-i|-y-oo-u-", "a-b|c", "--tt-e-s-tt--"]
    T = max(len(s) for s in specs)
    lp = torch.full((len(specs), T, V), math.log(1.0 / V))
    for i, s in enumerate(specs):
        lp[i, : len(s)] = peaked(s)
    lengths = torch.tensor([len(s) for s in specs])
    greedy = greedy_decode(lp, lengths)
    beamed = beam.decode(lp, lengths)
    assert [h.token_ids for h in beamed] == [h.token_ids for h in greedy]
    assert [h.frames for h in beamed] == [h.frames for h in greedy]
    assert TOK.decode(beamed[0].token_ids) == "hi you"


def test_beam_finds_best_labelling_where_greedy_fails(beam: BeamSearchDecoder) -> None:
    # Two frames, P(blank) = 0.6 and P(a) = 0.4 each. The best single path is "--" (0.36),
    # so greedy says "", but P("a") = P(aa) + P(a-) + P(-a) = 0.16 + 0.24 + 0.24 = 0.64.
    a = TOK.tokens.index("a")
    probs = torch.full((1, 2, V), 1e-6)
    probs[0, :, 0], probs[0, :, a] = 0.6, 0.4
    lp = probs.log()
    (g,) = greedy_decode(lp, torch.tensor([2]))
    (b,) = beam.decode(lp, torch.tensor([2]))
    assert g.token_ids == []
    assert b.token_ids == [a]
    assert b.score == pytest.approx(math.log(0.64), abs=1e-3)
    viterbi = BeamSearchDecoder(TOK.to_list(), log_add=False)
    assert viterbi.decode(lp, torch.tensor([2]))[0].token_ids == []


def test_beam_options_and_errors(beam: BeamSearchDecoder) -> None:
    lp = peaked("ab")[None]
    with pytest.raises(ValueError, match="V="):
        beam.decode(lp[..., :10], torch.tensor([2]))
    with pytest.raises(ValueError, match="blank"):
        BeamSearchDecoder(["-", " ", "a"])
    with pytest.raises(FileNotFoundError, match="KenLM"):
        BeamSearchDecoder(TOK.to_list(), lm="/nonexistent/lm.bin")
    nb = BeamSearchDecoder(TOK.to_list(), nbest=3)
    (hyps,) = nb.decode_nbest(peaked("a-b", peak=0.5)[None], torch.tensor([3]))
    assert 1 < len(hyps) <= 3
    assert hyps[0].token_ids == path_ids("ab")
    assert hyps[0].score >= hyps[1].score
    # A pipe in our own token list must not clash with flashlight's word-boundary token.
    piped = BeamSearchDecoder(["<blank>", " ", "|", "a"])
    probs = torch.full((1, 3, 4), 0.02)
    probs[0, torch.arange(3), torch.tensor([2, 1, 3])] = 0.94
    assert piped.decode(probs.log(), None)[0].token_ids == [2, 1, 3]


def test_word_timestamps_exact() -> None:
    # "hi" at frames 2, 3, a space at 5, "you" at 7, 8, 9.
    lp = peaked("--hi-|-you--")[None]
    (hyp,) = greedy_decode(lp, torch.tensor([12]))
    assert hyp.frames == [2, 3, 5, 7, 8, 9]
    words = word_timestamps(hyp, TOK, 0.04, num_frames=12)
    assert words == [
        {"word": "hi", "start": pytest.approx(0.08), "end": pytest.approx(0.16)},
        {"word": "you", "start": pytest.approx(0.28), "end": pytest.approx(0.40)},
    ]


def test_word_timestamps_caps_and_edge_spaces() -> None:
    s, a, b = TOK.space_id, TOK.tokens.index("a"), TOK.tokens.index("b")
    hyp = CTCHypothesis(token_ids=[s, a, s, s, b], frames=[0, 3, 4, 6, 9], score=0.0)
    words = word_timestamps(hyp, TOK, 0.1, num_frames=9)
    assert [w["word"] for w in words] == ["a", "b"]
    assert words[0]["start"] == pytest.approx(0.3) and words[0]["end"] == pytest.approx(0.4)
    assert words[1]["start"] == pytest.approx(0.9) and words[1]["end"] == pytest.approx(0.9)
    assert word_timestamps(CTCHypothesis(), TOK, 0.1) == []
    with pytest.raises(ValueError):
        CTCHypothesis(token_ids=[1], frames=[])


def test_forced_align_words() -> None:
    lp = peaked("-hhi--|--yyou-")
    words = forced_align_words(lp, TOK.encode("hi you"), TOK, 0.04)
    assert [w["word"] for w in words] == ["hi", "you"]
    assert words[0]["start"] == pytest.approx(0.04) and words[0]["end"] == pytest.approx(0.16)
    assert words[1]["start"] == pytest.approx(0.36) and words[1]["end"] == pytest.approx(0.52)
    # A transcript the model does not favour is still aligned, and text is accepted too.
    other = forced_align_words(lp, "ho yo", TOK, 0.04)
    assert [w["word"] for w in other] == ["ho", "yo"]
    assert other[0]["start"] < other[0]["end"] <= other[1]["start"] < other[1]["end"] <= 14 * 0.04
    assert forced_align_words(lp, [], TOK, 0.04) == []
    with pytest.raises(AlignmentError, match="frames"):
        forced_align_words(lp[:3], "hello", TOK, 0.04)
    with pytest.raises(AlignmentError, match="blank"):
        forced_align_words(lp, [0, 3], TOK, 0.04)
