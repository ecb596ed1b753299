"""The shipped pose backbone (pipeline/pretrained/pose_backbone.py): it reads poses it never saw,
refuses a run it does not fit, and the demo's backbone stage starts from it."""

import shutil

import cv2
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from data_prep.corpora.video_corpus import (
    SIZES,
    clip_keypoints,
    clip_specs,
    pose_targets,
    render_clip,
)
from data_prep.frame_embed import FrameEmbedder, build_backbone, build_embedder, embedder_from_state
from data_prep.video_io import resize_short_side_and_center_crop
from pipeline.config import load_config
from pipeline.pretrained.pose_backbone import (
    POSE_BACKBONE,
    PoseBackboneError,
    pose_backbone_card,
    pose_backbone_weights,
    ship_pose_backbone,
)
from recipes.video_activity.stages import DEFAULT_CONFIG, VideoRecipe, VideoRecipeConfig

LITE0 = "efficientnet_lite0"


def _shipped(**held):
    card = pose_backbone_card()
    b = card["backbone"]
    return card, pose_backbone_weights(b["name"], b["frame_size"], b["short_side"], **held)


def _correlation(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-dimension Pearson r of (N, D) predictions and truths (unit-free: the head predicts in
    the fit's standardised units)."""
    p, t = pred - pred.mean(0), truth - truth.mean(0)
    return (p * t).sum(0) / np.sqrt((p**2).sum(0) * (t**2).sum(0) + 1e-12)


def test_the_shipped_backbone_reads_the_pose_of_ways_of_acting_its_fit_never_saw():
    card, path = _shipped()
    size = card["backbone"]["frame_size"]
    embedder = build_embedder(LITE0, str(path)).eval()
    assert embedder.projection is not None and embedder.dim == 67  # the pose head is kept: x, y of joints, ...
    corpus = SIZES["default"]
    # test clips performed in the held-out ways (the fit's heldout_motions), one per class
    specs = [s for s in clip_specs(corpus, "test") if s.variant][::20]
    assert {f"{s.variant}" for s in specs} <= {m.partition(".")[2] for m in card["fitted_on"]["heldout_motions"]}
    frames, truth = [], []
    for s in specs:
        clip, _ = render_clip(s.label, s.seed, corpus, s.style, s.variant)
        frames += [cv2.cvtColor(resize_short_side_and_center_crop(f, size, size), cv2.COLOR_BGR2RGB) for f in clip[::4]]
        truth.append(pose_targets(clip_keypoints(s.label, s.seed, corpus, s.style, s.variant), corpus.frame_size)[::4])
    r = _correlation(embedder.embed(np.stack(frames)), np.concatenate(truth))
    assert r.mean() > 0.6 and np.median(r) > 0.7  # measured 0.82 and 0.89; random or ImageNet weights under a random head: 0.00 and 0.02
    # the file is float16, as shipped; the embedder computes in float32
    assert {v.dtype for k, v in load_file(str(path)).items() if "num_batches" not in k} == {torch.float16}


def test_the_shipped_backbone_refuses_a_run_it_does_not_fit(tmp_path):
    card, _ = _shipped()
    b = card["backbone"]
    with pytest.raises(PoseBackboneError, match=f"frame_size {b['frame_size']}"):
        pose_backbone_weights(b["name"], b["frame_size"] + 16, b["short_side"] + 16)
    # holding out what the fit trained on would report a seen style as held out
    with pytest.raises(PoseBackboneError, match="stick, which this run holds out"):
        _shipped(heldout_styles=("filled", "stick"))
    with pytest.raises(PoseBackboneError, match="walk.normal"):
        _shipped(heldout_motions=("walk.normal",))
    # an altered copy is refused by its pinned sha256, before anything is built
    copy = tmp_path / "pose"
    shutil.copytree(POSE_BACKBONE, copy)
    weights = copy / card["weights"]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(PoseBackboneError, match="sha256"):
        pose_backbone_weights(b["name"], b["frame_size"], b["short_side"], root=copy)
    with pytest.raises(PoseBackboneError, match="not found"):
        pose_backbone_weights(b["name"], b["frame_size"], b["short_side"], root=tmp_path / "absent")


def test_ship_writes_float16_with_its_hash_and_refuses_a_backbone_without_a_pose_head(tmp_path):
    torch.manual_seed(0)
    model, dim = build_backbone(LITE0, "none")
    fitted = FrameEmbedder(model, dim, torch.nn.Linear(dim, 5)).eval()
    src = tmp_path / "backbone.safetensors"
    from safetensors.torch import save_file

    save_file(fitted.export_state(), str(src))
    card = {"backbone": {"name": LITE0, "frame_size": 48, "short_side": 56},
            "fitted_on": {"heldout_styles": ["filled"], "heldout_motions": []}}
    out = ship_pose_backbone(src, card, tmp_path / "shipped")
    path = pose_backbone_weights(LITE0, 48, 56, heldout_styles=("filled",), root=out)
    again = embedder_from_state(LITE0, load_file(str(path)), "shipped")
    frames = np.random.default_rng(0).integers(0, 255, (3, 48, 48, 3), dtype=np.uint8)
    np.testing.assert_allclose(again.embed(frames), fitted.embed(frames), atol=0.05)  # float16 storage
    assert yaml.safe_load((out / "config.yaml").read_text())["weights_dtype"] == "float16"
    save_file(FrameEmbedder(model, dim).export_state(), str(src))
    with pytest.raises(PoseBackboneError, match="no pose head"):
        ship_pose_backbone(src, card, tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_the_demo_backbone_stage_starts_from_the_shipped_backbone_and_fits_nothing(tmp_path):
    cfg = load_config(VideoRecipeConfig, DEFAULT_CONFIG, [f"exp_dir={tmp_path}"])
    assert cfg.backbone.weights == "pose" and cfg.backbone_fit.epochs == 0
    recipe = VideoRecipe(cfg)
    info = recipe.stage_backbone()["backbone"]
    card, path = _shipped()
    assert info["init"]["weights"] == "pose" and info["init"]["sha256"] == card["sha256"]
    assert info["embedding_dim"] == 67 and "fit_history" not in info
    # what the embed stage reads embeds as the shipped file does
    frames = np.random.default_rng(1).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    saved = embedder_from_state(LITE0, load_file(str(recipe.backbone_file)), "stage")
    np.testing.assert_allclose(saved.embed(frames), build_embedder(LITE0, str(path)).embed(frames), atol=1e-4)
    # real videos (--data) are refused before any stage runs, with the overrides that fit them
    real = load_config(VideoRecipeConfig, DEFAULT_CONFIG, [f"exp_dir={tmp_path}", f"data.corpus={tmp_path}"])
    with pytest.raises(PoseBackboneError, match="backbone.weights=imagenet backbone_fit.epochs=6"):
        VideoRecipe(real).hashes()
    # a reshipped backbone is another start: the stages after it are not up to date
    assert recipe.hashes()["backbone"] != VideoRecipe(
        load_config(VideoRecipeConfig, DEFAULT_CONFIG, [f"exp_dir={tmp_path}", "backbone.weights=imagenet"])
    ).hashes()["backbone"]
