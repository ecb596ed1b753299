"""Segments from word timestamps, and the SRT, WebVTT and TSV writers."""

from pipeline.inference.subtitles import render, segments, to_srt, to_tsv, to_vtt


def w(word, start, end):
    return {"word": word, "start": start, "end": end}


WORDS = [w("the", 0.0, 0.2), w("cat", 0.3, 0.6), w("sat", 0.7, 1.0),  # pause of 1.0 s next
         w("on", 2.0, 2.1), w("the", 2.2, 2.3), w("mat", 2.4, 2.8)]  # fmt: skip


def test_segments_break_at_pauses_length_and_duration():
    assert segments(WORDS) == [{"start": 0.0, "end": 1.0, "text": "the cat sat", "words": WORDS[:3]},
                               {"start": 2.0, "end": 2.8, "text": "on the mat", "words": WORDS[3:]}]  # fmt: skip
    assert [s["text"] for s in segments(WORDS, max_chars=7)] == ["the cat", "sat", "on the", "mat"]
    assert [s["text"] for s in segments(WORDS, max_gap_s=5, max_duration_s=1.5)] == ["the cat sat", "on the mat"]
    assert segments([]) == []
    long = [w("x" * 50, 0, 1), w("y", 1.1, 1.2)]
    assert [s["text"] for s in segments(long)] == ["x" * 50, "y"]  # a word longer than a line stands alone


def test_srt_vtt_tsv_shapes():
    segs = [{"start": 0.0, "end": 1.0, "text": "the cat sat"}, {"start": 3725.5, "end": 3726.25, "text": "on the mat"}]
    assert to_srt(segs) == ("1\n00:00:00,000 --> 00:00:01,000\nthe cat sat\n\n"
                            "2\n01:02:05,500 --> 01:02:06,250\non the mat\n\n")  # fmt: skip
    assert to_vtt(segs) == ("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nthe cat sat\n\n"
                            "01:02:05.500 --> 01:02:06.250\non the mat\n\n")  # fmt: skip
    assert to_tsv(segs) == "start\tend\ttext\n0\t1000\tthe cat sat\n3725500\t3726250\ton the mat\n"
    row = {"path": "a.wav", "text": "the cat sat on the mat", "duration": 3.0, "words": WORDS}
    assert render(row, "srt").count("-->") == 2 and render(row, "tsv").splitlines()[1] == "0\t1000\tthe cat sat"
    assert render({"path": "s.wav", "text": "", "duration": 1.0, "words": []}, "vtt") == "WEBVTT\n\n"


def test_words_carry_a_confidence_from_the_ctc_posteriors():
    """Each word's confidence is the geometric mean of its characters' posteriors at the frames
    that emit them: sure characters give about 1, a doubtful one pulls its word down."""
    import numpy as np

    from pipeline.decoding.timestamps import word_timestamps
    from pipeline.decoding.types import CTCHypothesis
    from pipeline.tokenizer import CharTokenizer

    tok = CharTokenizer()
    ids = tok.encode("ab c")
    hyp = CTCHypothesis(token_ids=ids, frames=[0, 2, 4, 6])
    probs = np.full((8, tok.vocab_size), 1e-6)
    for frame, (i, p) in zip(hyp.frames, zip(ids, (0.99, 0.99, 0.9, 0.25), strict=True), strict=True):
        probs[frame, i] = p
    words = word_timestamps(hyp, tok, 0.02, num_frames=8, log_probs=np.log(probs))
    assert [w["word"] for w in words] == ["ab", "c"]
    assert words[0]["confidence"] == 0.99 and words[1]["confidence"] == 0.25
    assert "confidence" not in word_timestamps(hyp, tok, 0.02, num_frames=8)[0]
