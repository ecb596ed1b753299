"""Stage hashes derived from declared inputs: a change reaches the stages that read it and
everything after them, never what comes before."""

from __future__ import annotations

import pytest

from pipeline.config import config_hash, load_config, to_dict
from pipeline.workflow.runner import Inputs, StageDef, bind_stages, derive_hashes
from recipes.speech_ctc import run as speech_run
from recipes.speech_ctc import stages as speech_ctc
from recipes.video_activity import run as video_run
from recipes.video_activity import stages as video_activity


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
    ("lm.extra_sources=[ding]", {"lm", "decode"}),
    ("decode.beam_size=2", {"decode"}),
])  # fmt: skip
def test_speech_change_reaches_its_readers_and_what_follows(override, changed):
    got = _changed(speech_ctc.SpeechRecipe, speech_ctc.SpeechRecipeConfig, speech_ctc.DEFAULT_CONFIG, override)
    assert got == changed


@pytest.mark.parametrize("override,changed", [
    ("backbone.frame_size=48", {"backbone", "embed", "lineage-model", "lineage-ablation", "train", "ablation", "evaluate"}),
    ("data.free_pose_clips=7", {"backbone", "embed", "lineage-model", "lineage-ablation", "train", "ablation", "evaluate"}),
    ("model.encoder.hidden_size=32", {"lineage-model", "train", "evaluate"}),
    ("ablation_train.lr=0.01", {"ablation", "evaluate"}),
    ("train.max_epochs=3", {"train", "evaluate"}),
])  # fmt: skip
def test_video_change_reaches_its_readers_and_what_follows(override, changed):
    got = _changed(video_activity.VideoRecipe, video_activity.VideoRecipeConfig, video_activity.DEFAULT_CONFIG, override)
    assert got == changed


def test_every_stage_has_a_node():
    for run, recipe in (
        (speech_run, speech_ctc.SpeechRecipe(load_config(speech_ctc.SpeechRecipeConfig, speech_ctc.DEFAULT_CONFIG))),
        (video_run, video_activity.VideoRecipe(load_config(video_activity.VideoRecipeConfig, video_activity.DEFAULT_CONFIG))),
    ):
        hashes = recipe.hashes()
        stages = bind_stages(recipe, run.STAGES)
        assert [s.config_hash for s in stages] == [hashes[row.node] for row in run.STAGES]
        assert [s.collective for s in stages] == [s.name in ("train", "ablation") for s in stages]


# Resolved configs and stage hashes of every conf file, taken before the recipes left
# pipeline/workflow and before conf files could name a _base_: today's files must resolve to
# the same configs, and existing experiment directories must keep their stage markers. A
# deliberate change of a recipe config changes these; update them in the same change.
PINNED = {
    ("speech_ctc", "default"): ("cd3cd579b8a5f0af", ["0ecb5dd9d2e7503a", "0ecb5dd9d2e7503a", "bd8805cb713e0804",
                                "d485363282d0c495", "d91e3bd32390b158", "232b61228901fd80", "232b61228901fd80"]),
    ("speech_ctc", "large"): ("e68735867c545bc0", ["2f80b540cfd64162", "2f80b540cfd64162", "14225240534600fa",
                              "abc496c7114c3bc2", "b5215ba469d1be05", "d9845197d48b97f4", "d9845197d48b97f4"]),
    ("speech_ctc", "tiny"): ("06b8a28f95b4403f", ["b5a12fdffbf6da28", "b5a12fdffbf6da28", "0ee356820c343205",
                             "9f041f9563613a2a", "1ec06f81c165d059", "624ba007375bba02", "624ba007375bba02"]),
    ("video_activity", "default"): ("bb2f9ff235391a76", ["f41ca92dd5b30136", "f41ca92dd5b30136", "ca75880646a3a2ea",
                                    "c056a4192db1bb52", "99af39f710057eb1", "977ac5bbcbb64691", "4f4a93b0d027f639",
                                    "4f4a93b0d027f639"]),
    ("video_activity", "large"): ("2f4804e835734fe8", ["0e0f9ce9311bd99f", "0e0f9ce9311bd99f", "5452f173306ad94e",
                                  "f1f08ca12543049b", "c0652500e96a6e16", "9702927c7a020600", "ab507d91b2a8533c",
                                  "ab507d91b2a8533c"]),
    ("video_activity", "tiny"): ("64d430c173036464", ["10af66fd9b9488fd", "10af66fd9b9488fd", "5f8d57e84d406c2d",
                                 "dd74969af6de147a", "119efb8879ef8e79", "8fd12ee63e39d40d", "0773aa56685249b8",
                                 "0773aa56685249b8"]),
}  # fmt: skip


@pytest.mark.parametrize("recipe,conf", sorted(PINNED))
def test_conf_files_resolve_as_before(recipe, conf):
    run = {"speech_ctc": speech_run, "video_activity": video_run}[recipe]
    cfg_cls = {"speech_ctc": speech_ctc.SpeechRecipeConfig, "video_activity": video_activity.VideoRecipeConfig}[recipe]
    cfg = load_config(cfg_cls, run.DEFAULT_CONFIG.parent / f"{conf}.yaml")
    want_config, want_stages = PINNED[recipe, conf]
    assert config_hash(to_dict(cfg)) == want_config, to_dict(cfg)
    assert [s.config_hash for s in run.build_stages(cfg)] == want_stages


def test_bind_stages_refuses_bad_tables():
    class Recipe:
        def hashes(self):
            return {"a": "1", "b": "2"}

        def step(self):
            return {"ran": True}

    (stage,) = bind_stages(Recipe(), [StageDef(0, "one", Recipe.step, "b")])
    assert (stage.config_hash, stage.run()) == ("2", {"ran": True})
    with pytest.raises(ValueError, match="unknown node 'c'"):
        bind_stages(Recipe(), [StageDef(0, "one", Recipe.step, "c")])
    with pytest.raises(ValueError, match="must increase"):
        bind_stages(Recipe(), [StageDef(1, "one", Recipe.step, "a"), StageDef(1, "two", Recipe.step, "a")])
    with pytest.raises(ValueError, match="names differ"):
        bind_stages(Recipe(), [StageDef(0, "one", Recipe.step, "a"), StageDef(1, "one", Recipe.step, "a")])


def test_derive_hashes_refuses_bad_graphs():
    ok = derive_hashes({"b": Inputs({"x": 1}, after={"a": "a"}), "a": Inputs({"y": 2})})  # any order
    assert ok["b"] != derive_hashes({"b": Inputs({"x": 1}, after={"a": "a"}), "a": Inputs({"y": 3})})["b"]
    with pytest.raises(ValueError, match="unknown node 'z'"):
        derive_hashes({"a": Inputs({}, after={"z": "z"})})
    with pytest.raises(ValueError, match="cycle"):
        derive_hashes({"a": Inputs({}, after={"b": "b"}), "b": Inputs({}, after={"a": "a"})})
    with pytest.raises(ValueError, match="both a value and a dependency"):
        derive_hashes({"a": Inputs({}), "b": Inputs({"a": 1}, after={"a": "a"})})
