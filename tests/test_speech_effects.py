"""The per-effect study (recipes/speech_ctc/effects.py): configs, and a run on a tiny recipe."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from data_prep.augment_audio import EFFECTS, AugmentConfig
from data_prep.store import FeatureStore
from recipes.speech_ctc.effects import (
    condition_config,
    conditions,
    corrupt_test,
    format_effects,
    only_effect,
    score_all,
    train_condition,
)
from recipes.speech_ctc.run import main as recipe_main
from recipes.speech_ctc.stages import SpeechRecipeConfig
from tests.test_speech_recipe import TINY


def test_only_effect_switches_every_other_effect_off():
    aug = only_effect(AugmentConfig(), "codec", rir_bank_seed=3)
    assert aug.codec_prob == 1.0 and aug.rir_bank_seed == 3
    assert all(getattr(aug, f"{e}_prob") == 0.0 for e in EFFECTS if e != "codec")
    with pytest.raises(ValueError, match="unknown effect"):
        only_effect(AugmentConfig(), "echo")


def test_conditions_keep_the_number_of_updates(tmp_path):
    base = SpeechRecipeConfig()
    base = replace(base, train=replace(base.train, max_epochs=20))
    reverb = condition_config(base, "reverb", tmp_path / "reverb")
    assert reverb.augment_copies == 1 and reverb.augment.reverb_prob == 1.0 and reverb.augment.noise_prob == 0.0
    assert reverb.train.max_epochs == 10 and reverb.exp_dir == str(tmp_path / "reverb")
    speed = condition_config(base, "speed", tmp_path / "speed")
    assert speed.speed_perturb == (0.9, 1.1) and speed.augment_copies == 0 and speed.train.max_epochs == 7
    plain = condition_config(base, "no_specaug", tmp_path / "x")
    assert plain.specaugment.freq_masks == 0 and plain.specaugment.time_masks == 0 and plain.train.max_epochs == 20
    assert condition_config(base, "reverb", tmp_path / "x", updates=2).train.max_epochs == 20
    again = condition_config(base, "repeat", tmp_path / "r")
    assert again.train.seed == base.train.seed + 1 and again.train.max_epochs == 20
    assert conditions()[0] == "none" and set(EFFECTS) < set(conditions())
    with pytest.raises(ValueError, match="unknown training condition"):
        condition_config(base, "none", tmp_path / "none")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_study_on_a_tiny_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("effects_base")
    recipe_main(["--config", str(TINY), "--exp-dir", str(base), "train.max_epochs=2", "--stop-stage", "3"])
    out = tmp_path_factory.mktemp("effects")
    stores = corrupt_test(base, out, ("gain", "telephone"), workers=1)
    clean = FeatureStore(base / "feats" / "test")
    phone = FeatureStore(stores["telephone"])
    assert sorted(phone.ids) == sorted(i + "-aug1" for i in clean.ids)
    first = clean.ids[0]
    assert not np.allclose(clean.get(first), phone.get(first + "-aug1"))  # the channel changed the audio

    summary = train_condition(base, out, "gain", threads=1)
    assert summary["train"]["train_utterances"] == 2 * len(FeatureStore(base / "feats" / "train").ids)
    assert (out / "gain" / "feats" / "train-aug1").is_dir()
    assert train_condition(base, out, "gain") == summary  # a finished condition is not trained again

    results = score_all(base, out, ("none", "gain", "speed"))  # speed: not trained, left out
    assert set(results["conditions"]) == {"none", "gain"} and results["epochs"] == {"none": 2, "gain": 1}
    for by_test in results["conditions"].values():
        assert set(by_test) == {"clean", "gain", "telephone"}
        for groups in by_test.values():
            assert groups["all"]["utterances"] == len(clean.ids) and 0.0 <= groups["all"]["wer"] <= 2.0
    assert json.loads((out / "effects.json").read_text()) == results
    table = format_effects(results, group="all")
    assert table.count("\n| none | 2 |") == 1 and "| gain | 1 |" in table and "telephone" in table.splitlines()[1]
