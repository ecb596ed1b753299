"""The compiled lexicon: the same search as the lexicon file, and refused when it does not fit."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pipeline.decoding.compiled_lexicon import COMPILED_NAME, CompiledLexicon, compile_lexicon
from pipeline.decoding.flashlight import FlashlightSearch
from pipeline.decoding.lexicon import LexiconError, read_lexicon, spell_words, write_lexicon
from pipeline.decoding.ngram import build_kneser_ney
from pipeline.io_utils import file_sha256
from pipeline.limits import LimitError, Limits, use_limits
from pipeline.tokenizer import CharTokenizer

TOK = CharTokenizer()
SENTENCES = ["the cat sat on the mat", "the cat ran home", "a dog sat", "the dog ran on a mat", "a cat ate"] * 3


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lm")
    model = build_kneser_ney(SENTENCES, 3)
    lexicon, _ = spell_words(model.vocabulary, TOK)
    model.write_arpa(out / "lm.arpa.gz")
    write_lexicon(out / "lexicon.txt", lexicon)
    compile_lexicon(out / "lm.arpa.gz", out / "lexicon.txt", TOK, out / COMPILED_NAME)
    return out


def sources(lm_dir: Path) -> dict[str, str]:
    return {name: file_sha256(lm_dir / name) for name in ("lm.arpa.gz", "lexicon.txt")}


def random_emissions(rng: np.random.Generator, frames: int) -> np.ndarray:
    logits = rng.normal(size=(frames, TOK.vocab_size)).astype(np.float32) * 3
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


def test_the_compiled_lexicon_gives_the_same_search_as_the_file(lm_dir) -> None:
    compiled = CompiledLexicon.load(lm_dir / COMPILED_NAME, TOK.tokens, sources(lm_dir))
    parsed = read_lexicon(lm_dir / "lexicon.txt", TOK)
    assert compiled.words == list(parsed) and len(compiled.spellings) == len(parsed)
    assert compiled.unigram is not None and compiled.unigram.dtype == np.float32
    arpa = lm_dir / "lm.arpa.gz"
    from_file = FlashlightSearch(TOK.tokens, lm=arpa, lexicon=parsed, beam_size=8, lm_weight=1.5, nbest=3)
    from_npz = FlashlightSearch(TOK.tokens, lm=arpa, lexicon=compiled, beam_size=8, lm_weight=1.5, nbest=3)
    np.testing.assert_array_equal(from_file.lexicon.unigram, compiled.unigram)  # KenLM's own scores, kept exactly
    rng = np.random.default_rng(0)
    for frames in (1, 7, 40, 90):
        x = random_emissions(rng, frames)
        assert from_file.search(x) == from_npz.search(x)


def _rewrite(src: Path, dst: Path, **changes) -> Path:
    with np.load(src) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    dst.write_bytes(buf.getvalue())
    return dst


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"offsets": np.array([0, 5, 3], np.int32)}, "do not fit"),
        ({"ids": np.array([999] * 3, np.uint16)}, "offsets are inconsistent|token ids"),
        ({"unigram": None}, "non-finite"),
        ({"ids": None}, "wrong types"),
        ({"sources": np.frombuffer(b"lm.arpa.gz=00\nlexicon.txt=11\n", np.uint8)}, "another lexicon or LM"),
        ({"tokens": np.frombuffer(b"a\nb\n", np.uint8)}, "another token list"),
        ({"words": np.frombuffer(b"\xff\xfe\n", np.uint8)}, "not UTF-8"),
    ],
)
def test_a_damaged_or_stale_compiled_lexicon_is_refused(lm_dir, tmp_path, change, message) -> None:
    src = lm_dir / COMPILED_NAME
    with np.load(src) as npz:
        words = npz["words"].tobytes().decode().split("\n")[:-1]
        ids = npz["ids"]
    if "unigram" in change:
        change = {"unigram": np.full(len(words), np.nan, np.float32)}
    if "ids" in change and change["ids"] is None:
        change = {"ids": ids.astype(np.int64)}
    bad = _rewrite(src, tmp_path / "bad.npz", **change)
    with pytest.raises(LexiconError, match=message) as info:
        CompiledLexicon.load(bad, TOK.tokens, sources(lm_dir))
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


def test_a_compiled_lexicon_that_is_not_one_is_refused_before_numpy_reads_it(lm_dir, tmp_path) -> None:
    text = tmp_path / "text.npz"
    text.write_text("not a zip\n")
    with pytest.raises(LexiconError, match="cannot read the compiled lexicon"):
        CompiledLexicon.load(text, TOK.tokens, sources(lm_dir))
    bomb = tmp_path / "bomb.npz"  # a deflated member that inflates far past the limit
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("words.npy", b"\0" * (4 << 20))
    with use_limits(Limits(max_lm_bytes=1 << 20)), pytest.raises(LimitError, match="max-lm-bytes|max_lm_bytes"):
        CompiledLexicon.load(bomb, TOK.tokens, sources(lm_dir))
    with use_limits(Limits(max_lexicon_words=3)), pytest.raises(LimitError, match="lexicon"):
        CompiledLexicon.load(lm_dir / COMPILED_NAME, TOK.tokens, sources(lm_dir))


def test_a_bundle_decodes_with_its_compiled_lexicon_and_refuses_a_stale_one(lm_dir, tmp_path) -> None:
    from bundles import tiny_speech_bundle

    from pipeline.bundle import load_bundle
    from pipeline.decoding.word_lm import LMError, bundle_lm
    from recipes.speech_ctc.lm import bundle_record

    record, files = bundle_record(lm_dir, 3, {"lm_weight": 1.0, "word_score": 0.0, "beam_size": 8, "beam_size_token": 8}, TOK)
    assert record["compiled"] == COMPILED_NAME and set(record["sha256"]) == set(files)
    bundle = load_bundle(tiny_speech_bundle(tmp_path / "b", extra={"lm": record}, files=files))
    lm = bundle_lm(bundle, TOK)
    assert lm is not None and lm.compiled is not None and lm.spellings is None  # the file is not parsed
    assert lm.search(TOK).lexicon is lm.compiled
    # A compiled lexicon made from another lexicon, even with its own hash recorded, is refused.
    other = tmp_path / "other"
    other.mkdir()
    (other / "lm.arpa.gz").write_bytes((lm_dir / "lm.arpa.gz").read_bytes())
    write_lexicon(other / "lexicon.txt", {"cat": ["c", "a", "t", "|"]})
    compile_lexicon(other / "lm.arpa.gz", other / "lexicon.txt", TOK, other / COMPILED_NAME)
    stale = {**record, "sha256": {**record["sha256"], COMPILED_NAME: file_sha256(other / COMPILED_NAME)}}
    bundle = load_bundle(tiny_speech_bundle(tmp_path / "c", extra={"lm": stale},
                                            files={**files, COMPILED_NAME: other / COMPILED_NAME}))  # fmt: skip
    with pytest.raises(LMError, match="compiled from another lexicon"):
        bundle_lm(bundle, TOK)


def test_the_shipped_model_carries_a_compiled_lexicon_that_matches_its_lexicon() -> None:
    from pipeline.bundle import load_bundle
    from pipeline.decoding.word_lm import bundle_lm
    from pipeline.pretrained import SPEECH_MODEL

    bundle = load_bundle(SPEECH_MODEL, kind="speech_ctc")
    tok = CharTokenizer.from_list(bundle.config["tokens"])
    lm = bundle_lm(bundle, tok)
    assert lm is not None and lm.compiled is not None
    parsed = read_lexicon(lm.lexicon, tok)
    assert lm.compiled.words == list(parsed)
    space = tok.tokens.index(" ")
    for word in ("the", "zebra", lm.compiled.words[-1]):
        i = lm.compiled.words.index(word)
        assert lm.compiled.spellings[i] == [space if t == "|" else tok.tokens.index(t) for t in parsed[word]]
