"""Tests for the synthetic action-video corpus (data_prep.corpora.video_corpus / video_figure)."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from data_prep.corpora.video_corpus import (
    CLASSES,
    SIZES,
    SPLITS,
    VideoCorpusConfig,
    clip_keypoints,
    clip_length,
    clip_seeds,
    clip_specs,
    free_pose_clip,
    free_pose_keypoints,
    generate_video_corpus,
    render_clip,
    write_free_pose_clips,
)
from data_prep.corpora.video_figure import (
    JOINTS,
    LABEL_MOTION,
    VARIANTS,
    Body,
    Pose,
    forward_kinematics,
)
from data_prep.manifest import read_manifest
from data_prep.video_io import probe_video, read_frames

CFG = VideoCorpusConfig(frame_size=48, min_frames=10, max_frames=14)
J = {n: i for i, n in enumerate(JOINTS)}


def test_classes_are_the_ten_labels():
    assert CLASSES == (
        "walk_left", "walk_right", "sit_down", "stand_up", "raise_arms",
        "lower_arms", "jump", "squat", "wave", "clap",
    )  # fmt: skip


def test_same_seed_gives_identical_frames_and_other_seeds_differ():
    a, fps_a = render_clip("jump", 11, CFG)
    b, fps_b = render_clip("jump", 11, CFG)
    assert fps_a == fps_b and len(a) == len(b)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    c, _ = render_clip("jump", 12, CFG)
    assert len(a) != len(c) or any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize(("fwd", "rev"), [("sit_down", "stand_up"), ("raise_arms", "lower_arms")])
@pytest.mark.parametrize("seed", [0, 7])
def test_reversed_pairs_are_exactly_reversed(fwd: str, rev: str, seed: int):
    f, fps_f = render_clip(fwd, seed, CFG)
    r, fps_r = render_clip(rev, seed, CFG)
    assert fps_f == fps_r and len(f) == len(r)
    assert all(np.array_equal(x, y) for x, y in zip(f, r[::-1], strict=True))
    assert not np.array_equal(f[0], f[-1])  # the motion is not its own reverse


def test_squat_first_and_last_poses_match():
    for seed in range(4):
        kp = clip_keypoints("squat", seed, CFG, camera=False)
        np.testing.assert_allclose(kp[0], kp[-1], atol=1e-6)
        drop = kp[:, J["pelvis"], 1] - kp[0, J["pelvis"], 1]  # screen y grows downwards
        assert drop.max() > 0.1 * CFG.frame_size * 0.45  # it does go down in between


def test_all_classes_render():
    for label in CLASSES:
        frames, fps = render_clip(label, 3, CFG)
        assert CFG.min_frames <= len(frames) <= CFG.max_frames
        assert CFG.min_fps <= fps <= CFG.max_fps
        assert (len(frames), fps) == clip_length(label, 3, CFG)
        for f in frames:
            assert f.shape == (48, 48, 3) and f.dtype == np.uint8
        assert np.abs(frames[0].astype(int) - frames[len(frames) // 2]).mean() > 0.5, label


def _kp(label: str, seed: int, variant: str = "") -> np.ndarray:
    return clip_keypoints(label, seed, VideoCorpusConfig(), variant=variant, camera=False)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("way", range(4))
def test_motions_do_what_their_labels_say(seed: int, way: int):
    """Every way of performing each action does what its label says."""
    size = VideoCorpusConfig().frame_size

    def kp(label):
        return _kp(label, seed, VARIANTS[LABEL_MOTION[label][0]][way])

    pelvis_x = kp("walk_left")[:, J["pelvis"], 0]
    assert pelvis_x[-1] < pelvis_x[0] - 0.2 * size
    pelvis_x = kp("walk_right")[:, J["pelvis"], 0]
    assert pelvis_x[-1] > pelvis_x[0] + 0.2 * size

    sit = kp("sit_down")
    assert sit[-1, J["pelvis"], 1] > sit[0, J["pelvis"], 1] + 0.08 * size  # ends lower
    stand = kp("stand_up")
    assert stand[-1, J["pelvis"], 1] < stand[0, J["pelvis"], 1] - 0.08 * size

    up = kp("raise_arms")
    assert (up[0, [J["wrist_l"], J["wrist_r"]], 1] > up[0, J["neck"], 1]).all()  # start low
    assert (up[-1, [J["wrist_l"], J["wrist_r"]], 1] < up[-1, J["head"], 1]).all()  # end overhead

    jump = kp("jump")
    feet = jump[:, [J["ankle_l"], J["ankle_r"], J["toe_l"], J["toe_r"]], 1].max(axis=1)
    assert feet.min() < feet[0] - 0.03 * size  # both feet leave the ground

    squat = kp("squat")
    assert squat[:, J["pelvis"], 1].max() > squat[0, J["pelvis"], 1] + 0.08 * size  # goes down

    wave = kp("wave")
    wrists = wave[:, [J["wrist_l"], J["wrist_r"]], :]
    arm = np.argmin(wrists[0, :, 1])
    assert (wrists[:, arm, 1] < wave[:, J["neck"], 1]).all()  # one hand stays up
    assert np.ptp(wrists[:, arm, 0]) > 0.05 * size  # and swings sideways

    clap = kp("clap")
    gap = np.abs(clap[:, J["wrist_l"], 0] - clap[:, J["wrist_r"], 0])
    together = gap < 0.15 * gap.max()
    assert together.any() and not together.all()


def test_forward_kinematics_standing_figure_is_upright():
    pts = forward_kinematics(Pose(), Body())
    assert pts[:, 1].min() == pytest.approx(0.0)  # feet on the ground
    assert pts[J["head"], 1] > pts[J["neck"], 1] > pts[J["pelvis"], 1] > pts[J["knee_l"], 1]
    assert pts[J["head"], 1] + Body().head_r == pytest.approx(1.0, abs=0.1)  # about 1 tall
    jumped = forward_kinematics(Pose(lift=0.2), Body())
    np.testing.assert_allclose(jumped[:, 1] - pts[:, 1], 0.2)


def test_seed_ranges_are_disjoint_and_classes_balanced():
    cfg = SIZES["default"]
    seeds = {split: clip_seeds(cfg, split) for split in SPLITS}
    sets = {split: {s for _, s in pairs} for split, pairs in seeds.items()}
    assert not sets["train"] & sets["test"] and not sets["dev"] & sets["test"]
    assert not sets["train"] & sets["dev"]
    assert max(sets["train"] | sets["dev"]) < min(sets["test"])  # test seeds never used before
    for split, pairs in seeds.items():
        assert len(sets[split]) == len(pairs)
        extra = cfg.heldout_per_class * len(cfg.heldout_styles) + cfg.heldout_motion_per_class if split == "test" else 0
        assert set(Counter(label for label, _ in pairs).values()) == {cfg.per_class(split) + extra}
    other = VideoCorpusConfig(seed=1)
    assert not {s for _, s in clip_seeds(other, "train")} & sets["train"]


def test_heldout_motions_appear_only_in_their_own_test_clips():
    """Train and dev perform each action in its seen ways only, and every seen way occurs;
    the held-out ways are drawn in the seen styles, so only the motion is new."""
    from data_prep.corpora.video_corpus import HELDOUT_MOTIONS, LABEL_MOTION, motion_variant

    cfg = SIZES["default"]
    for split in ("train", "dev"):
        ways = {f"{LABEL_MOTION[s.label][0]}.{motion_variant(s.label, s.seed, cfg, s.variant)}"
                for s in clip_specs(cfg, split)}
        assert not ways & set(HELDOUT_MOTIONS)
        if split == "train":
            assert len(ways) == sum(len(v) for v in VARIANTS.values()) - len(HELDOUT_MOTIONS)
    held = [s for s in clip_specs(cfg, "test") if s.variant]
    assert len(held) == len(CLASSES) * cfg.heldout_motion_per_class
    assert {f"{LABEL_MOTION[s.label][0]}.{s.variant}" for s in held} == set(HELDOUT_MOTIONS)
    assert {s.style for s in held} == set(cfg.styles)


def test_each_variant_moves_the_body_its_own_way():
    """The same seed performed in each variant gives clearly different joint paths, and a
    reversed pair stays the exact reverse of its twin in every variant."""
    cfg = VideoCorpusConfig()
    for label in ("jump", "wave", "clap", "raise_arms", "sit_down", "squat", "walk_left"):
        kind = LABEL_MOTION[label][0]
        paths = {v: clip_keypoints(label, 5, cfg, variant=v, camera=False) for v in VARIANTS[kind]}
        size = paths[VARIANTS[kind][0]].shape
        for a, b in itertools.combinations(VARIANTS[kind], 2):
            assert paths[a].shape == size == paths[b].shape
            gap = np.abs(paths[a] - paths[b]).max(axis=(0, 2)).max()  # the joint that differs most, px
            assert gap > 0.06 * cfg.frame_size, (label, a, b, gap)
    for v in VARIANTS["raise"]:
        up = clip_keypoints("raise_arms", 9, cfg, variant=v, camera=False)
        down = clip_keypoints("lower_arms", 9, cfg, variant=v, camera=False)
        np.testing.assert_allclose(up, down[::-1])


def test_a_pause_holds_the_motion_and_it_still_ends_in_time():
    """During a pause the pose stands still; the motion then catches up and ends where it
    would have ended without one."""
    from data_prep.corpora.video_figure import Motion

    still = Motion("wave", cycles=3.0, sway_amp=0.0, hold=0.2, hold_at=0.3)
    plain = Motion("wave", cycles=3.0, sway_amp=0.0)
    assert still.pose(0.35).segments == still.pose(0.48).segments
    assert still.pose(0.35).segments != still.pose(0.6).segments
    assert still.pose(1.0).segments == plain.pose(1.0).segments


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown motion"):
        VideoCorpusConfig(heldout_motions=("jump.backflip",))
    with pytest.raises(ValueError, match="every walk variant"):
        VideoCorpusConfig(heldout_motions=tuple(f"walk.{v}" for v in VARIANTS["walk"]))
    with pytest.raises(ValueError):
        VideoCorpusConfig(min_frames=30, max_frames=20)
    with pytest.raises(ValueError):
        VideoCorpusConfig(container="mkv")


def test_tiny_corpus_writes_readable_videos_and_manifests(tmp_path: Path):
    cfg = SIZES["tiny"]
    out = generate_video_corpus(tmp_path / "corpus", cfg, num_workers=1)
    assert set(out) == set(SPLITS)
    for split, manifest in out.items():
        recs = read_manifest(manifest, "video")
        extra = cfg.heldout_per_class + cfg.heldout_motion_per_class if split == "test" else 0
        per_class = cfg.per_class(split) + extra
        assert len(recs) == len(CLASSES) * per_class
        assert set(Counter(r["label"] for r in recs).values()) == {per_class}
        held = {r["id"] for r in recs if r["style"] in cfg.heldout_styles}
        assert len(held) == (len(CLASSES) * cfg.heldout_per_class if split == "test" else 0)
        moved = {r["id"] for r in recs if r["motion"] in cfg.heldout_motions}
        assert len(moved) == (len(CLASSES) * cfg.heldout_motion_per_class if split == "test" else 0)
        assert not held & moved  # each held-out clip changes one thing
        raw = [json.loads(line) for line in manifest.read_text().splitlines()]
        assert not Path(raw[0]["video_filepath"]).is_absolute()  # stored relative
        for rec in recs[:: max(1, len(recs) // 6)]:
            info = probe_video(rec["video_filepath"])
            assert info.num_frames == rec["num_frames"]
            assert (info.width, info.height) == (cfg.frame_size, cfg.frame_size)
            assert info.fps == pytest.approx(rec["fps"])
            assert cfg.min_frames <= rec["num_frames"] <= cfg.max_frames
    # The written video holds the rendered clip (up to lossy compression).
    rec = read_manifest(out["test"], "video")[0]
    frames, _ = render_clip(rec["label"], rec["seed"], cfg, rec["style"])
    decoded, _ = read_frames(rec["video_filepath"])
    assert decoded.shape[0] == len(frames)
    rgb = np.stack(frames)[..., ::-1].astype(int)
    assert np.abs(decoded.astype(int) - rgb).mean() < 12


def test_corpus_is_resumable_and_parallel_matches_serial(tmp_path: Path):
    cfg = VideoCorpusConfig(
        train_per_class=1,
        dev_per_class=0,
        test_per_class=1,
        heldout_per_class=0,
        heldout_motion_per_class=0,
        frame_size=32,
        min_frames=6,
        max_frames=8,
    )
    out_dir = tmp_path / "c"
    first = generate_video_corpus(out_dir, cfg, num_workers=1)
    videos = sorted((out_dir / "videos").rglob("*.mp4"))
    assert len(videos) == 2 * len(CLASSES)
    mtimes = {p: p.stat().st_mtime_ns for p in videos}
    text = {s: p.read_text() for s, p in first.items()}

    assert generate_video_corpus(out_dir, cfg, num_workers=1) == first  # marker: nothing redone
    (out_dir / ".done").unlink()
    videos[0].unlink()
    again = generate_video_corpus(out_dir, cfg, num_workers=2)
    assert videos[0].exists()
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items() if p != videos[0])
    assert {s: p.read_text() for s, p in again.items()} == text

    fresh = generate_video_corpus(tmp_path / "p", cfg, num_workers=2)
    for split in SPLITS:
        a = read_manifest(first[split], "video")
        b = read_manifest(fresh[split], "video")
        assert [r["id"] for r in a] == [r["id"] for r in b]
        for ra, rb in zip(a, b, strict=True):
            assert (
                Path(ra["video_filepath"]).read_bytes() == Path(rb["video_filepath"]).read_bytes()
            )


def test_skin_stands_out_from_shirt_and_background():
    from data_prep.corpora.video_scene import colour_against as _colour_against
    from data_prep.corpora.video_scene import colour_apart as _skin_colour
    from data_prep.corpora.video_scene import luma as _luma

    rng = np.random.default_rng(0)
    vs_bg, vs_shirt = [], []
    for _ in range(200):
        bg = float(rng.uniform(25, 230))
        shirt = _colour_against(rng, bg)
        skin = _skin_colour(rng, bg, shirt)
        vs_bg.append(abs(_luma(np.array(skin, float)) - bg))
        vs_shirt.append(float(np.linalg.norm(np.subtract(skin, shirt, dtype=float))))
    assert min(vs_bg) >= 30.0 and np.mean(np.array(vs_bg) >= 59.0) > 0.8
    assert np.mean(np.array(vs_shirt) >= 100.0) > 0.95  # hands in front of the torso stay visible


def test_pose_targets_split_position_from_configuration():
    from data_prep.corpora.video_corpus import VideoCorpusConfig, clip_keypoints, pose_targets

    n_j = len(JOINTS)
    xy = clip_keypoints("wave", 123, VideoCorpusConfig(), variant="overhead")
    t = pose_targets(xy, 112)
    assert t.shape == (len(xy), 4 * n_j - 1) and t.dtype == np.float32
    np.testing.assert_allclose(t[:, : 2 * n_j], (xy / 112 * 2 - 1).reshape(len(xy), -1), rtol=1e-5)
    moved = pose_targets(xy * 1.5 + np.array([7.0, -3.0]), 112)  # bigger figure elsewhere
    rel = slice(2 * n_j, 4 * n_j - 2)
    np.testing.assert_allclose(moved[:, rel], t[:, rel], atol=1e-5)  # configuration unchanged
    assert not np.allclose(moved[:, : 2 * n_j], t[:, : 2 * n_j])  # position changed
    np.testing.assert_allclose(moved[:, -1], t[:, -1] * 1.5, rtol=1e-5)
    # waving moves a wrist relative to the body
    wrists = t[:, rel].reshape(len(xy), n_j - 1, 2)[:, [JOINTS.index("wrist_l") - 1, JOINTS.index("wrist_r") - 1]]
    assert wrists.std(axis=0).max() > 0.1  # an idle wrist sways less than half of that


def test_pose_flip_map_matches_mirrored_keypoints():
    from data_prep.corpora.video_corpus import (
        VideoCorpusConfig,
        clip_keypoints,
        pose_flip_map,
        pose_targets,
    )

    xy = clip_keypoints("walk_left", 7, VideoCorpusConfig())
    mirrored = xy.copy()
    mirrored[..., 0] = 112 - mirrored[..., 0]
    swap = [JOINTS.index(n[:-1] + ("r" if n.endswith("l") else "l")) if n[-2:] in ("_l", "_r") else i for i, n in enumerate(JOINTS)]
    mirrored = mirrored[:, swap]
    perm, sign = pose_flip_map()
    np.testing.assert_allclose(pose_targets(xy, 112)[:, perm] * sign, pose_targets(mirrored, 112), atol=1e-5)


def test_styles_cycle_over_seen_clips_and_heldout_ones_are_test_only():
    from data_prep.corpora.video_corpus import clip_specs

    cfg = SIZES["default"]
    for split in SPLITS:
        specs = clip_specs(cfg, split)
        seen = [s for s in specs if s.style in cfg.styles]
        counts = Counter(s.style for s in seen)
        assert set(counts) == set(cfg.styles) and max(counts.values()) - min(counts.values()) <= len(CLASSES)
        held = [s for s in specs if s.style in cfg.heldout_styles]
        assert len(held) == (len(CLASSES) * cfg.heldout_per_class if split == "test" else 0)
    test_seeds = [s.seed for s in clip_specs(cfg, "test")]
    assert len(set(test_seeds)) == len(test_seeds)
    with pytest.raises(ValueError, match="distinct"):
        VideoCorpusConfig(styles=("stick", "filled"), heldout_styles=("filled",))
    with pytest.raises(ValueError, match="unknown style"):
        VideoCorpusConfig(styles=("crayon",))


@pytest.mark.parametrize("style", ["stick", "outline", "silhouette", "blocky", "filled"])
def test_every_style_draws_the_figure_where_its_joints_are(style: str):
    """The figure's pixels differ from the empty scene around the joints (camera included)."""
    from data_prep.corpora.video_corpus import ClipSpec, _plan, _render, clip_keypoints

    cfg = VideoCorpusConfig()
    spec = ClipSpec("raise_arms", 4242, style)
    plan = _plan(spec, cfg)
    frames = _render(plan)
    xy = clip_keypoints("raise_arms", 4242, cfg, style)
    empty = _render(replace(plan, scale=1e-3))  # the same scene with a dot-sized figure
    hits = 0
    for t in (0, len(frames) // 2, len(frames) - 1):
        diff = np.abs(frames[t].astype(int) - empty[t].astype(int)).sum(-1)
        for x, y in xy[t][[JOINTS.index(j) for j in ("head", "knee_l", "knee_r", "neck")]]:
            r, c = int(round(y)), int(round(x))
            if 0 <= r < 112 and 0 <= c < 112:
                hits += diff[max(0, r - 2) : r + 3, max(0, c - 2) : c + 3].max() > 40
    assert hits >= 10


def test_styles_look_different_for_the_same_clip():
    frames = {s: np.stack(render_clip("clap", 77, VideoCorpusConfig(), s)[0]).astype(np.float32)
              for s in ("stick", "outline", "silhouette", "blocky", "filled")}
    # the same seed gives the same scene and motion, so any difference is the figure's look
    assert all(not np.array_equal(frames["stick"], f) for s, f in frames.items() if s != "stick")


def test_camera_elevation_foreshortens_heights():
    from data_prep.corpora.video_figure import project

    pts = forward_kinematics(Pose(), Body())
    level, _ = project(pts, 0.0, 100.0, (50.0, 90.0))
    above, _ = project(pts, 0.0, 100.0, (50.0, 90.0), elevation=30.0)
    head, foot = JOINTS.index("head"), JOINTS.index("ankle_l")
    assert (above[foot, 1] - above[head, 1]) < (level[foot, 1] - level[head, 1])


def test_free_pose_clips_reach_poses_the_actions_never_take_and_resume(tmp_path: Path):
    """Free-pose clips (pose targets for the backbone fit, no label): joints that drift through
    their whole range, frames and joints that agree, seeds no split uses, and a resumable writer."""
    cfg = VideoCorpusConfig(frame_size=48, min_frames=10, max_frames=14, styles=("stick", "outline"))
    paths = [free_pose_keypoints(seed, cfg, "stick") for seed in range(40)]
    frames, fps = free_pose_clip(3, cfg, "stick")
    assert len(frames) == len(paths[3]) and frames[0].shape == (48, 48, 3) and fps > 0
    np.testing.assert_array_equal(free_pose_keypoints(3, cfg, "stick"), paths[3])  # deterministic
    # each knee bends and each wrist rises above the head in some clips and not in others
    for s in "lr":
        above = [bool((p[:, J[f"wrist_{s}"], 1] < p[:, J["head"], 1]).any()) for p in paths]
        assert 0 < sum(above) < len(paths)
        bent = []
        for p in paths:  # hip to ankle well short of the leg's length: a bent knee
            segs = np.linalg.norm(p[:, J[f"knee_{s}"]] - p[:, J[f"hip_{s}"]], axis=-1) + np.linalg.norm(
                p[:, J[f"ankle_{s}"]] - p[:, J[f"knee_{s}"]], axis=-1)
            reach = np.linalg.norm(p[:, J[f"ankle_{s}"]] - p[:, J[f"hip_{s}"]], axis=-1)
            bent.append(bool((reach < 0.7 * segs).any()))
        assert 0 < sum(bent) < len(paths)
    # the joints move within a clip: not a held pose
    assert np.median([np.ptp(p[:, J["wrist_r"]], axis=0).max() for p in paths]) > 0.1 * cfg.frame_size

    written = write_free_pose_clips(tmp_path / "free", cfg, 4, num_workers=1)
    assert [style for _, style, _ in written] == ["stick", "outline", "stick", "outline"]
    used = {s for split in SPLITS for _, s in clip_seeds(cfg, split)}
    assert not {seed for _, _, seed in written} & used
    for path, _, seed in written:
        decoded, _ = read_frames(path)
        assert decoded.shape[0] == len(free_pose_keypoints(seed, cfg, "stick"))
    mtimes = {p: p.stat().st_mtime_ns for p, _, _ in written}
    assert write_free_pose_clips(tmp_path / "free", cfg, 4, num_workers=2) == written  # kept, not redone
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
