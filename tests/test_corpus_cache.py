"""The embedded speech corpus kept across runs: one cache entry per corpus config, linked from
each experiment, reused by the next run of the same config and never by another."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from data_prep.corpora.speech_corpus import SIZES, corpus_cache_dir


def test_the_cache_entry_is_keyed_by_every_field_of_the_config(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SEQREC_CORPUS_CACHE", str(tmp_path))
    tiny = corpus_cache_dir(SIZES["tiny"])
    assert tiny is not None and tiny.parent == tmp_path
    assert corpus_cache_dir(replace(SIZES["tiny"])) == tiny  # the same config, the same entry
    assert corpus_cache_dir(replace(SIZES["tiny"], seed=1)) != tiny
    assert corpus_cache_dir(SIZES["small"]) != tiny
    monkeypatch.setenv("SEQREC_CORPUS_CACHE", "0")
    assert corpus_cache_dir(SIZES["tiny"]) is None
    monkeypatch.delenv("SEQREC_CORPUS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert corpus_cache_dir(SIZES["tiny"]).parent == tmp_path / "xdg" / "seqrec" / "corpora"


def test_a_second_experiment_reuses_the_corpus_and_another_seed_does_not(monkeypatch, tmp_path) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make setup installs it)")
    from pipeline.config import load_config
    from recipes.speech_ctc.stages import DEFAULT_CONFIG, SpeechRecipe, SpeechRecipeConfig

    monkeypatch.setenv("SEQREC_CORPUS_CACHE", str(tmp_path / "cache"))

    def corpus_stage(exp: str, *overrides: str):
        cfg = load_config(SpeechRecipeConfig, DEFAULT_CONFIG.parent / "tiny.yaml",
                          [f"exp_dir={tmp_path / exp}", "num_workers=1", *overrides])  # fmt: skip
        recipe = SpeechRecipe(cfg)
        return recipe, recipe.stage_corpus()

    first, info = corpus_stage("a")
    link = tmp_path / "a" / "corpus"
    assert link.is_symlink() and link.resolve().parent == (tmp_path / "cache").resolve()
    wavs = sorted(link.resolve().glob("wavs/*/*.wav"))
    assert wavs and info["corpus"]["train"]["utterances"] > 0
    stamps = {p: p.stat().st_mtime_ns for p in wavs}
    second, info2 = corpus_stage("b")  # same config: the same entry, nothing synthesised again
    assert (tmp_path / "b" / "corpus").resolve() == link.resolve() and info2 == info
    assert {p: p.stat().st_mtime_ns for p in wavs} == stamps
    other, _ = corpus_stage("c", "data.seed=1")  # another config: another entry
    assert (tmp_path / "c" / "corpus").resolve() != link.resolve()
    assert {p: p.stat().st_mtime_ns for p in wavs} == stamps  # the first entry is untouched
    # A link the recipe did not make is refused, and left alone.
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "corpus").symlink_to(tmp_path / "b", target_is_directory=True)
    with pytest.raises(RuntimeError, match="not to a corpus cache entry"):
        corpus_stage("d")
    assert (tmp_path / "d" / "corpus").is_symlink()
