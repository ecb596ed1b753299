"""Stage hashes derived from declared inputs: a change reaches the stages that read it and
everything after them, never what comes before."""

from __future__ import annotations

import pytest

from pipeline.config import load_config
from pipeline.workflow import speech_ctc, video_activity
from pipeline.workflow.runner import Inputs, derive_hashes


def _changed(recipe_cls, cfg_cls, default, override: str) -> set[str]:
    before = recipe_cls(load_config(cfg_cls, default)).hashes()
    after = recipe_cls(load_config(cfg_cls, default, [override])).hashes()
    assert set(before) == set(after)
    return {k for k in before if before[k] != after[k]}


@pytest.mark.parametrize("override,changed", [
    ("data.seed=5", {"data", "features", "lineage", "train", "lm", "decode"}),
    ("augment_copies=1", {"features", "lineage", "train", "decode"}),
    ("speed_perturb=[0.9,1.1]", {"features", "lineage", "train", "decode"}),
    ("model.encoder.hidden_size=32", {"lineage", "train", "decode"}),
    ("specaugment.freq_masks=0", {"lineage", "train", "decode"}),
    ("train.lr=0.01", {"train", "decode"}),
    ("train.max_epochs=3", {"train", "decode"}),  # the run changes, its checkpoints' lineage does not
    ("lm.spell_log10=-3.0", {"lm", "decode"}),
    ("decode.beam_size=2", {"decode"}),
])  # fmt: skip
def test_speech_change_reaches_its_readers_and_what_follows(override, changed):
    got = _changed(speech_ctc.SpeechRecipe, speech_ctc.SpeechRecipeConfig, speech_ctc.DEFAULT_CONFIG, override)
    assert got == changed


@pytest.mark.parametrize("override,changed", [
    ("backbone.frame_size=48", {"backbone", "embed", "lineage-model", "lineage-ablation", "train", "ablation", "evaluate"}),
    ("model.encoder.hidden_size=32", {"lineage-model", "train", "evaluate"}),
    ("ablation_train.lr=0.01", {"ablation", "evaluate"}),
    ("train.max_epochs=3", {"train", "evaluate"}),
])  # fmt: skip
def test_video_change_reaches_its_readers_and_what_follows(override, changed):
    got = _changed(video_activity.VideoRecipe, video_activity.VideoRecipeConfig, video_activity.DEFAULT_CONFIG, override)
    assert got == changed


def test_every_stage_has_a_node():
    for recipe in (
        speech_ctc.SpeechRecipe(load_config(speech_ctc.SpeechRecipeConfig, speech_ctc.DEFAULT_CONFIG)),
        video_activity.VideoRecipe(load_config(video_activity.VideoRecipeConfig, video_activity.DEFAULT_CONFIG)),
    ):
        hashes = set(recipe.hashes().values())
        assert all(stage.config_hash in hashes for stage in recipe.stages())


def test_derive_hashes_refuses_bad_graphs():
    ok = derive_hashes({"b": Inputs({"x": 1}, after={"a": "a"}), "a": Inputs({"y": 2})})  # any order
    assert ok["b"] != derive_hashes({"b": Inputs({"x": 1}, after={"a": "a"}), "a": Inputs({"y": 3})})["b"]
    with pytest.raises(ValueError, match="unknown node 'z'"):
        derive_hashes({"a": Inputs({}, after={"z": "z"})})
    with pytest.raises(ValueError, match="cycle"):
        derive_hashes({"a": Inputs({}, after={"b": "b"}), "b": Inputs({}, after={"a": "a"})})
    with pytest.raises(ValueError, match="both a value and a dependency"):
        derive_hashes({"a": Inputs({}), "b": Inputs({"a": 1}, after={"a": "a"})})
