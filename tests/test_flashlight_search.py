"""The torch-free flashlight-text search gives torchaudio's ctc_decoder results exactly.

torchaudio wraps the same flashlight-text decoder; seqrec now drives flashlight directly (no
torch at inference). Both are run here on the same emissions, word-level with a lexicon and a
word 3-gram, and lexicon-free, and must agree on tokens, frames and scores.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from pipeline.decoding.flashlight import FlashlightSearch
from pipeline.decoding.lexicon import add_spelling_units, read_lexicon, spell_words, write_lexicon
from pipeline.decoding.ngram import build_kneser_ney
from pipeline.tokenizer import CharTokenizer

TOK = CharTokenizer()
SENTENCES = ["the cat sat on the mat", "the cat ran", "a cat sat", "the dog sat on a mat", "the cat sat"] * 3


def _peaky_emissions(seed: int, num_frames: int = 60) -> np.ndarray:
    """(T, V) log-probs that look like a CTC model's: mostly blank, with letter and space peaks."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1, (num_frames, TOK.vocab_size)).astype(np.float32)
    logits[:, 0] += 3.0
    peaks = rng.random(num_frames) < 0.4
    logits[peaks, rng.integers(1, TOK.vocab_size, peaks.sum())] += 6.0
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


def _torchaudio_results(emissions: np.ndarray, **kwargs) -> list:
    from torchaudio.models.decoder import ctc_decoder

    tokens = ["|" if t == " " else t for t in TOK.tokens]
    dec = ctc_decoder(tokens=tokens, blank_token="<blank>", sil_token="|", **kwargs)
    return dec(torch.from_numpy(emissions)[None])[0]


def _collapse(hyp, length: int) -> tuple[list[int], list[int]]:
    """torchaudio's hypothesis as seqrec reads it: tokens and their frames, sentinels dropped."""
    ids, frames = [], []
    for tok, step in zip(hyp.tokens.tolist(), hyp.timesteps.tolist(), strict=False):
        if 0 < step <= length:
            ids.append(int(tok))
            frames.append(int(step) - 1)
    return ids, frames


@pytest.fixture(scope="module")
def lm_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lm")
    model = build_kneser_ney(SENTENCES, 3)
    lexicon, _ = spell_words(model.vocabulary, TOK)
    lexicon = add_spelling_units(lexicon, TOK, model, -1.5)
    model.write_arpa(tmp / "lm.arpa.gz")
    write_lexicon(tmp / "lexicon.txt", lexicon)
    return tmp / "lm.arpa.gz", tmp / "lexicon.txt"


@pytest.mark.parametrize("seed", range(6))
def test_word_level_search_matches_torchaudio(lm_files, seed):
    arpa, lexicon = lm_files
    em = _peaky_emissions(seed)
    settings = {"beam_size": 16, "beam_size_token": 8, "beam_threshold": 25.0, "lm_weight": 1.5,
                "word_score": -0.5, "log_add": True}
    ours = FlashlightSearch(TOK.tokens, lm=arpa, lexicon=read_lexicon(lexicon, TOK), nbest=3, **settings)
    # torchaudio's word-level path: our emissions plus the closing space frame seqrec adds.
    closed = np.concatenate([em, np.full((1, TOK.vocab_size), -1e4, np.float32)])
    closed[-1, TOK.space_id] = 0.0
    theirs = _torchaudio_results(closed, lexicon=str(lexicon), lm=str(arpa), nbest=3, **settings)
    got = ours.search(em)
    assert len(got) == len(theirs) >= 1
    for a, b in zip(got, theirs, strict=True):
        assert (a.token_ids, a.frames) == _collapse(b, len(em))
        assert a.score == pytest.approx(b.score, abs=1e-4)
        assert a.words == b.words


@pytest.mark.parametrize("seed", range(4))
def test_lexicon_free_search_matches_torchaudio(seed):
    em = _peaky_emissions(100 + seed)
    ours = FlashlightSearch(TOK.tokens, beam_size=8, beam_threshold=25.0, log_add=True).search(em)[0]
    theirs = _torchaudio_results(em, lexicon=None, lm=None, beam_size=8, beam_threshold=25.0, log_add=True)[0]
    assert (ours.token_ids, ours.frames) == _collapse(theirs, len(em))
    assert ours.score == pytest.approx(theirs.score, abs=1e-4)


def test_the_search_imports_no_torch(lm_files):
    """The torch-free engine decodes with a word LM without importing torch."""
    import subprocess

    arpa, lexicon = lm_files
    code = (
        "import sys, numpy as np\n"
        "from pipeline.decoding.flashlight import FlashlightSearch\n"
        "from pipeline.decoding.lexicon import read_lexicon\n"
        "from pipeline.tokenizer import CharTokenizer\n"
        "tok = CharTokenizer()\n"
        f"s = FlashlightSearch(tok.tokens, lm={str(arpa)!r}, lexicon=read_lexicon({str(lexicon)!r}, tok))\n"
        "s.search(np.log(np.full((10, tok.vocab_size), 1 / tok.vocab_size, np.float32)))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
