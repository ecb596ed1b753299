"""Synthetic action-video corpus: an articulated figure acting out 10 classes, via OpenCV.

Each clip is rendered from its own integer seed and a rendering style, which fix everything
about it: body size and proportions, position, speed and phase of the action, how the figure
is drawn and coloured (:mod:`video_styles`), the scene (:mod:`video_scene`: a plain, indoor or
outdoor background with furniture, an occluder in front, lighting), the camera (height, shake,
pan, zoom, roll, resolution), blur, noise, clip length and frame rate. Train, dev and test draw
seeds from disjoint ranges, so no test clip shares a seed with a training clip; classes are
balanced. The test split also holds clips in styles that train and dev never show
(``heldout_styles``), to measure what a change of look costs, and clips of each action
performed in a way that train and dev never show (``heldout_motions``, for example a tuck
jump where training only has jumps with swinging, still or spreading arms), to measure
whether a model has learned the action or only the generator's way of performing it.

``sit_down``/``stand_up`` and ``raise_arms``/``lower_arms`` are time-reversed pairs: for the
same seed the frames of one are exactly the frames of the other in reverse order, so only
frame order tells them apart. Left/right are screen directions: horizontal-flip augmentation
would swap ``walk_left`` and ``walk_right``.

Layout written by :func:`generate_video_corpus`::

    out_dir/videos/<split>/<label>/<label>-<seed>.mp4   (.avi if mp4 cannot be written)
    out_dir/{train,dev,test}.jsonl                       (written last, atomically)
    out_dir/corpus_config.json, out_dir/.done            (config hash; resumability)
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from data_prep.corpora.video_figure import (
    JOINTS,
    LABEL_MOTION,
    VARIANTS,
    Body,
    J,
    Motion,
    forward_kinematics,
    project,
    sample_free_motion,
    sample_motion,
)
from data_prep.corpora.video_scene import BACKGROUNDS, Occluder, lighting, occluder
from data_prep.corpora.video_scene import background as scene_background
from data_prep.corpora.video_styles import STYLES, Look, draw_figure, sample_look, style_body
from data_prep.manifest import write_manifest
from data_prep.video_io import VideoError, VideoInfo, probe_video, write_video_checked
from pipeline.config import config_hash
from pipeline.errors import SeqrecError
from pipeline.io_utils import marker_matches, write_marker

log = logging.getLogger(__name__)

CLASSES = (
    "walk_left", "walk_right", "sit_down", "stand_up", "raise_arms",
    "lower_arms", "jump", "squat", "wave", "clap",
)  # fmt: skip
SPLITS = ("train", "dev", "test")
#: Bump when the renderer changes, so old clips are not reused.
RENDER_VERSION = 4  # 2: skin-coloured forearms; 3: styles, scenes, occluders, lighting, camera pan; 4: motion variants, pauses
#: One way of performing each base motion that train and dev never show (``kind.variant``).
HELDOUT_MOTIONS = (
    "walk.march", "sit.crossed", "raise.one_by_one", "jump.tuck", "squat.hips", "wave.shoulder", "clap.low",
)  # fmt: skip
#: Seed layout: cfg.seed * _SEED_BLOCK + split offset + class index * _CLASS_BLOCK + k.
_SEED_BLOCK = 10_000_000
_SPLIT_OFFSET = {"train": 0, "dev": 3_000_000, "test": 6_000_000}
_FREE_OFFSET = 9_000_000  # free-pose clips (write_free_pose_clips): no split's
_CLASS_BLOCK = 100_000


class VideoCorpusError(SeqrecError, RuntimeError):
    """Generating the corpus failed for some clips (the message lists them)."""


@dataclass(frozen=True)
class VideoCorpusConfig:
    """Size and rendering settings of the synthetic video corpus.

    Attributes:
        train_per_class / dev_per_class / test_per_class: Clips per class in each split, in the
            seen ``styles`` (spread evenly over them).
        heldout_per_class: Test clips per class in each of ``heldout_styles``; train and dev
            never contain those styles.
        heldout_motion_per_class: Test clips per class performed in a held-out way
            (``heldout_motions``), drawn in the seen styles.
        styles: Rendering styles of train, dev and the seen part of test
            (see :data:`video_styles.STYLES`).
        heldout_styles: Styles that only the test split contains.
        heldout_motions: Ways of performing an action (``kind.variant``, see
            :data:`video_figure.VARIANTS`) that only the test split contains; every other
            clip is performed in one of its kind's remaining variants, drawn by its seed.
        seed: Corpus seed; selects a disjoint block of clip seeds.
        frame_size: Side of the square frames in pixels.
        min_frames / max_frames: Clip length range (inclusive), frames.
        min_fps / max_fps: Frame-rate range (inclusive, integer fps).
        nuisance: Scales noise, blur and camera shake (0 = clean, 1 = default).
        container: ``"mp4"`` (mp4v) or ``"avi"`` (MJPG).
    """

    train_per_class: int = 90  # 60 -> 90 with 6 instead of 9 fitting epochs: test top-1 95.5% -> 97.5%
    dev_per_class: int = 10
    test_per_class: int = 20
    heldout_per_class: int = 20
    styles: tuple[str, ...] = ("stick", "outline", "silhouette", "blocky")
    heldout_styles: tuple[str, ...] = ("filled",)
    heldout_motion_per_class: int = 20
    heldout_motions: tuple[str, ...] = HELDOUT_MOTIONS
    seed: int = 0
    frame_size: int = 112
    min_frames: int = 24
    max_frames: int = 48
    min_fps: int = 12
    max_fps: int = 30
    nuisance: float = 1.0
    container: str = "mp4"

    def __post_init__(self) -> None:
        for name in ("train_per_class", "dev_per_class", "test_per_class", "heldout_per_class",
                     "heldout_motion_per_class"):
            n = getattr(self, name)
            if not 0 <= n < _CLASS_BLOCK // 2:
                raise ValueError(f"{name} must be in [0, {_CLASS_BLOCK // 2}), got {n}")
        if not self.styles:
            raise ValueError("styles must name at least one style")
        if len(self.heldout_styles) * self.heldout_per_class >= _CLASS_BLOCK // 4:
            raise ValueError(f"heldout_per_class x len(heldout_styles) must be < {_CLASS_BLOCK // 4}")
        for s in (*self.styles, *self.heldout_styles):
            if s not in STYLES:
                raise ValueError(f"unknown style {s!r}; expected some of {STYLES}")
        both = set(self.styles) & set(self.heldout_styles)
        if both or len(set(self.styles)) < len(self.styles) or len(set(self.heldout_styles)) < len(self.heldout_styles):
            raise ValueError(f"styles and heldout_styles must be distinct names, got {self.styles} and {self.heldout_styles}")
        for name in self.heldout_motions:
            kind, _, way = name.partition(".")
            if way not in VARIANTS.get(kind, ()):
                known = [f"{k}.{v}" for k, vs in VARIANTS.items() for v in vs]
                raise ValueError(f"unknown motion {name!r} in heldout_motions; expected some of {known}")
        for kind in VARIANTS:
            if not self.seen_variants(kind):
                raise ValueError(f"heldout_motions holds out every {kind} variant; train needs one")
        if self.heldout_motion_per_class >= _CLASS_BLOCK // 4:
            raise ValueError(f"heldout_motion_per_class must be < {_CLASS_BLOCK // 4}")
        if not 0 <= self.seed < 200:
            raise ValueError(f"seed must be in [0, 200), got {self.seed}")
        if self.frame_size < 32:
            raise ValueError(f"frame_size must be >= 32, got {self.frame_size}")
        if not 2 <= self.min_frames <= self.max_frames:
            raise ValueError(
                f"need 2 <= min_frames <= max_frames, got {self.min_frames}, {self.max_frames}"
            )
        if not 1 <= self.min_fps <= self.max_fps:
            raise ValueError(f"need 1 <= min_fps <= max_fps, got {self.min_fps}, {self.max_fps}")
        if self.nuisance < 0:
            raise ValueError(f"nuisance must be >= 0, got {self.nuisance}")
        if self.container not in ("mp4", "avi"):
            raise ValueError(f"container must be 'mp4' or 'avi', got {self.container!r}")

    def per_class(self, split: str) -> int:
        """Seen-style clips per class in ``split``."""
        return getattr(self, f"{split}_per_class")

    def seen_variants(self, kind: str) -> tuple[str, ...]:
        """The variants of a base motion that train, dev and the seen part of test use."""
        return tuple(v for v in VARIANTS[kind] if f"{kind}.{v}" not in self.heldout_motions)

    def heldout_variants(self, kind: str) -> tuple[str, ...]:
        """The variants of a base motion that only the test split's held-out motion clips use."""
        return tuple(v for v in VARIANTS[kind] if f"{kind}.{v}" in self.heldout_motions)


SIZES: dict[str, VideoCorpusConfig] = {
    "tiny": VideoCorpusConfig(
        train_per_class=4,
        dev_per_class=2,
        test_per_class=2,
        heldout_per_class=2,
        heldout_motion_per_class=2,
        frame_size=64,
        min_frames=16,
        max_frames=24,
    ),
    "default": VideoCorpusConfig(),
    "large": VideoCorpusConfig(
        train_per_class=200, dev_per_class=30, test_per_class=50, heldout_per_class=50, heldout_motion_per_class=50
    ),
}


@dataclass(frozen=True)
class ClipSpec:
    """What to render: the label, the seed that fixes everything else, the style, and the way
    the action is performed ("" = one of the config's seen variants, chosen by the seed)."""

    label: str
    seed: int
    style: str = "stick"
    variant: str = ""


def clip_specs(cfg: VideoCorpusConfig, split: str) -> list[ClipSpec]:
    """Every clip of a split. Seed ranges of splits never overlap; the k-th clip of a class is
    in the k-th seen style (cycling), and test adds ``heldout_per_class`` clips per class in
    each held-out style, and ``heldout_motion_per_class`` clips per class performed in its
    held-out variants (in the seen styles), each from a seed range of their own."""
    base = cfg.seed * _SEED_BLOCK + _SPLIT_OFFSET[split]
    specs = [
        ClipSpec(label, base + c * _CLASS_BLOCK + k, cfg.styles[k % len(cfg.styles)])
        for c, label in enumerate(CLASSES)
        for k in range(cfg.per_class(split))
    ]
    if split == "test":
        for h, style in enumerate(cfg.heldout_styles):
            start = _CLASS_BLOCK // 2 + h * cfg.heldout_per_class
            specs += [
                ClipSpec(label, base + c * _CLASS_BLOCK + start + k, style)
                for c, label in enumerate(CLASSES)
                for k in range(cfg.heldout_per_class)
            ]
        start = _CLASS_BLOCK // 2 + _CLASS_BLOCK // 4
        for c, label in enumerate(CLASSES):
            ways = cfg.heldout_variants(LABEL_MOTION[label][0])
            specs += [
                ClipSpec(label, base + c * _CLASS_BLOCK + start + k, cfg.styles[k % len(cfg.styles)], ways[k % len(ways)])
                for k in range(cfg.heldout_motion_per_class if ways else 0)
            ]
    return specs


def clip_seeds(cfg: VideoCorpusConfig, split: str) -> list[tuple[str, int]]:
    """``(label, seed)`` of every clip of a split (see :func:`clip_specs`)."""
    return [(s.label, s.seed) for s in clip_specs(cfg, split)]


# --------------------------------------------------------------------------- clip plan


def _rng(label: str, seed: int, stream: int) -> np.random.Generator:
    """A clip's generators: 0 length/fps, 1 everything else, 2 its variant. Reversed pairs
    share them."""
    if label not in LABEL_MOTION:
        raise ValueError(f"unknown label {label!r}; expected one of {CLASSES}")
    kind, _ = LABEL_MOTION[label]
    # A stable key per base motion (never hash(), which is salted per process).
    key = ["walk", "sit", "raise", "jump", "squat", "wave", "clap"].index(kind)
    if kind == "walk":
        key += 10 * CLASSES.index(label)
    return np.random.default_rng([seed, key, stream])


def motion_variant(label: str, seed: int, cfg: VideoCorpusConfig, variant: str = "") -> str:
    """The way a clip performs its action: ``variant`` if given, else one of the config's seen
    variants of the label's base motion, chosen by the seed (the same for a reversed pair)."""
    rng = _rng(label, seed, 2)  # checks the label
    if variant:
        return variant
    seen = cfg.seen_variants(LABEL_MOTION[label][0])
    return seen[int(rng.integers(len(seen)))]


def clip_length(label: str, seed: int, cfg: VideoCorpusConfig) -> tuple[int, float]:
    """``(num_frames, fps)`` of a clip, without rendering it."""
    rng = _rng(label, seed, 0)
    n = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
    fps = float(rng.integers(cfg.min_fps, cfg.max_fps + 1))
    return n, fps


@dataclass(frozen=True)
class _Plan:
    num_frames: int
    fps: float
    reverse: bool
    body: Body  # with the style's proportions
    motion: Motion
    yaw: float
    elevation: float  # camera height angle, degrees (0 = level)
    scale: float  # pixels per body unit (standing height)
    origin: tuple[float, float]  # screen (x, ground y) of the pelvis at t = 0
    look: Look
    background: np.ndarray
    occluder: Occluder | None
    camera: np.ndarray  # (T, 2, 3) affine maps from the drawn scene to the frame
    low_res: float  # the frame is resampled through this fraction of its size (1 = sharp)
    light: np.ndarray  # (S, S, 3) illumination gains
    blur: float
    noise: float
    gain: np.ndarray  # (T,)
    noise_seed: int


def _smooth_walk(rng: np.random.Generator, n: int, step: float) -> np.ndarray:
    """A smooth random camera path (n, 2) with zero mean."""
    walk = np.cumsum(rng.normal(0, step, size=(n, 2)), axis=0)
    kernel = np.array([1.0, 2.0, 3.0, 2.0, 1.0]) / 9.0
    walk = np.stack(
        [np.convolve(np.pad(w, 2, mode="edge"), kernel, mode="valid") for w in walk.T], 1
    )
    return walk - walk.mean(axis=0)


def _camera(rng: np.random.Generator, n: int, size: int, k: float) -> np.ndarray:
    """Per-frame affine camera maps (n, 2, 3): shake, a slow pan, zoom in or out, roll."""
    shake = _smooth_walk(rng, n, rng.uniform(0.0, 0.5) * k * size / 112) + rng.normal(
        0, rng.uniform(0.0, 0.6) * k * size / 112, size=(n, 2)
    )
    pan = np.linspace(0.0, 1.0, n)[:, None] * rng.uniform(-0.1, 0.1, size=2) * size * min(k, 1.0)
    pan -= pan.mean(axis=0)
    z0, z1 = 1.0 + rng.uniform(-0.12, 0.15, size=2) * k
    zoom = np.linspace(z0, z1, n)
    roll = rng.uniform(-3, 3) * k + np.linspace(0, rng.uniform(-2, 2) * k, n)
    maps = np.stack([cv2.getRotationMatrix2D((size / 2, size / 2), float(r), float(z)) for r, z in zip(roll, zoom, strict=True)])
    maps[:, :, 2] += shake + pan
    return maps


def _plan(spec: ClipSpec, cfg: VideoCorpusConfig) -> _Plan:
    label, style = spec.label, spec.style
    n, fps = clip_length(label, spec.seed, cfg)
    rng = _rng(label, spec.seed, 1)
    size = cfg.frame_size
    motion, yaw = sample_motion(label, rng, motion_variant(label, spec.seed, cfg, spec.variant))
    body = style_body(Body.sample(rng), style)
    kind = motion.kind
    elevation = rng.uniform(0.0, 20.0)
    height_frac = rng.uniform(0.42, 0.55) if kind == "jump" else rng.uniform(0.5, 0.7)
    scale = height_frac * size
    ground = rng.uniform(0.84, 0.95) * size
    if kind == "jump":
        ground = max(ground, (height_frac * (1.05 + motion.height) + 0.04) * size)
    origin_x = rng.uniform(0.32, 0.68) * size
    if kind == "walk":
        travel_px = rng.uniform(0.3, 0.55) * size
        direction = 1.0 if yaw > 0 else -1.0
        origin_x = size / 2 - direction * travel_px / 2 + rng.uniform(-0.08, 0.08) * size
        travel = travel_px / (scale * abs(math.sin(math.radians(yaw))))
        motion = replace(motion, travel=travel)
    if kind == "squat":
        motion = replace(motion, amp=min(1.0, motion.amp))
    backdrop = BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS)))]
    background = scene_background(rng, size, backdrop, ground, scale)
    bg_luma = float(background.mean(axis=(0, 1)) @ np.array([0.114, 0.587, 0.299]))
    look = sample_look(rng, style, bg_luma, size)
    occ = occluder(rng, size, origin_x, ground, scale) if rng.random() < 0.2 else None
    k = cfg.nuisance
    camera = _camera(rng, n, size, k)
    low_res = float(rng.choice([1.0, 1.0, 1.0, 0.75, 0.5]))
    light = lighting(rng, size, min(k, 1.0))
    blur = 0.0 if rng.random() < 0.4 else rng.uniform(0.3, 1.1) * k
    noise = rng.uniform(0.0, 9.0) * k
    gain = 1.0 + rng.normal(0, 0.025 * k, size=n)
    return _Plan(
        num_frames=n,
        fps=fps,
        reverse=LABEL_MOTION[label][1],
        body=body,
        motion=motion,
        yaw=yaw,
        elevation=elevation,
        scale=scale,
        origin=(origin_x, ground),
        look=look,
        background=background,
        occluder=occ,
        camera=camera,
        low_res=low_res,
        light=light,
        blur=blur,
        noise=noise,
        gain=gain,
        noise_seed=int(rng.integers(0, 2**31)),
    )


def _keypoints(plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """Joints as drawn (T, J, 2), before the camera map, and depths (T, J), in the motion's
    own time order."""
    n = plan.num_frames
    xy = np.zeros((n, len(JOINTS), 2))
    depth = np.zeros((n, len(JOINTS)))
    for i in range(n):
        t = i / (n - 1)
        pts = forward_kinematics(plan.motion.pose(t), plan.body)
        xy[i], depth[i] = project(pts, plan.yaw, plan.scale, plan.origin, plan.elevation)
    return xy, depth


def clip_keypoints(
    label: str, seed: int, cfg: VideoCorpusConfig, style: str = "stick", variant: str = "", *, camera: bool = True
) -> np.ndarray:
    """2-D joints of a clip where they appear in its frames (with ``camera``, the default: the
    camera's shake, pan, zoom and roll included; without, as drawn in the scene), in the clip's
    frame order.

    Returns:
        (T, J, 2) float pixel coordinates; joint order is ``video_figure.JOINTS``.
    """
    plan = _plan(ClipSpec(label, seed, style, variant), cfg)
    xy, _ = _keypoints(plan)
    if camera:
        xy = np.einsum("tij,tkj->tki", plan.camera[:, :, :2], xy) + plan.camera[:, None, :, 2]
    return xy[::-1].copy() if plan.reverse else xy


def _free_plan(seed: int, cfg: VideoCorpusConfig, style: str) -> _Plan:
    plan = _plan(ClipSpec("raise_arms", seed, style), cfg)  # everything but the motion
    rng = np.random.default_rng([seed, 99, 3])
    return replace(plan, motion=sample_free_motion(rng), reverse=False, yaw=float(rng.uniform(-90.0, 90.0)))


def _in_frame(plan: _Plan) -> np.ndarray:
    """(T, J, 2) the plan's joints where they appear in its frames (camera map applied)."""
    xy, _ = _keypoints(plan)
    return np.einsum("tij,tkj->tki", plan.camera[:, :, :2], xy) + plan.camera[:, None, :, 2]


def free_pose_keypoints(seed: int, cfg: VideoCorpusConfig, style: str = "stick") -> np.ndarray:
    """(T, J, 2) the joints of :func:`free_pose_clip`'s frames, without rendering them."""
    return _in_frame(_free_plan(seed, cfg, style))


def free_pose_clip(seed: int, cfg: VideoCorpusConfig, style: str = "stick") -> tuple[list[np.ndarray], float]:
    """A clip of no action: a body whose joints drift at random (:func:`sample_free_motion`),
    in a scene, look, camera and length drawn as for a clip of the corpus. Its joints are
    :func:`free_pose_keypoints` of the same arguments.

    Returns:
        frames: T arrays (frame_size, frame_size, 3) uint8 BGR.
        fps: Its frame rate.
    """
    plan = _free_plan(seed, cfg, style)
    return _render(plan), plan.fps


def write_free_pose_clips(
    out_dir: str | Path, cfg: VideoCorpusConfig, count: int, *, num_workers: int = 2
) -> list[tuple[Path, str, int]]:
    """Renders ``count`` free-pose clips into ``out_dir`` (``free-<seed>.mp4``), the styles of
    ``cfg`` in turn, from a seed range that no split uses. Resumable: a valid clip already
    there is kept while the config is the same (``out_dir/free_config.json``).

    Returns:
        ``(path, style, seed)`` of each clip, in seed order.

    Raises:
        VideoCorpusError: A clip failed to render or write (after the others were tried).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chash = config_hash({"cfg": asdict(cfg), "render_version": RENDER_VERSION, "free": True})
    cfg_file = out / "free_config.json"
    reuse = marker_matches(cfg_file, chash)
    write_marker(cfg_file, chash, config=asdict(cfg), render_version=RENDER_VERSION)
    base = cfg.seed * _SEED_BLOCK + _FREE_OFFSET
    jobs = [(out, base + k, cfg.styles[k % len(cfg.styles)], cfg, reuse) for k in range(count)]
    results = _run_jobs(_safe_free_clip, jobs, num_workers)
    errors = [r for r in results if isinstance(r, str)]
    if errors:
        raise VideoCorpusError(f"{out}: {len(errors)} of {len(jobs)} free-pose clips failed; first: {errors[0]}")
    return [(path, job[2], job[1]) for job, path in zip(jobs, results, strict=True)]


def _safe_free_clip(job: tuple[Path, int, str, VideoCorpusConfig, bool]) -> Path | str:
    out, seed, style, cfg, reuse = job
    try:
        path = out / f"free-{seed}.{cfg.container}"
        found = _existing_valid(path, "raise_arms", seed, cfg) if reuse else None  # the plan's length and fps
        if found is None:
            frames, fps = free_pose_clip(seed, cfg, style)
            found = write_video_checked(path, frames, fps, fourcc="mp4v" if cfg.container == "mp4" else "MJPG")
        return found[0]
    except Exception as exc:  # one bad clip must not stop the others
        return f"free-{seed}: {type(exc).__name__}: {exc}"


def pose_targets(xy: np.ndarray, frame_size: int) -> np.ndarray:
    """Per-frame pose descriptor that a frame CNN learns to predict (the embedded recipe's
    backbone objective).

    Absolute joint positions are dominated by where the figure stands, which leaves the limbs'
    configuration (what tells wave from clap) a small part of a regression loss. The
    descriptor therefore holds both views:

    - every joint's position, scaled to [-1, 1] of the frame (2 * J values);
    - the joints other than the pelvis relative to it, divided by the clip's median torso
      length (neck to pelvis), so that body size and zoom drop out (2 * (J - 1) values);
    - the torso length relative to the frame (1 value: the figure's distance to the camera).

    Args:
        xy: (T, J, 2) pixel coordinates, joint order ``video_figure.JOINTS``.
        frame_size: The rendered frame's side in pixels.

    Returns:
        (T, 4 * J - 1) float32; :func:`pose_flip_map` mirrors it.
    """
    pelvis = xy[:, J["pelvis"]]  # (T, 2)
    torso = np.linalg.norm(xy[:, J["neck"]] - pelvis, axis=-1)  # (T,)
    scale = max(float(np.median(torso)), 1e-3)
    rel = (np.delete(xy, J["pelvis"], axis=1) - pelvis[:, None]) / scale  # (T, J - 1, 2)
    parts = [
        (xy / frame_size * 2 - 1).reshape(len(xy), -1),
        rel.reshape(len(xy), -1),
        (torso / frame_size)[:, None],
    ]
    return np.concatenate(parts, axis=1).astype(np.float32)


def pose_layout() -> tuple[int, tuple[int, ...]]:
    """Where :func:`pose_targets` keeps frame positions and sizes, for geometric augmentation:
    ``(P, sizes)``, the first P values being (x, y) pairs in [-1, 1] of the frame and
    ``sizes`` the indices of frame-relative lengths (the torso). The figure-relative values
    do not move when the frame is zoomed or shifted."""
    return 2 * len(JOINTS), (4 * len(JOINTS) - 2,)


def pose_flip_map() -> tuple[np.ndarray, np.ndarray]:
    """How :func:`pose_targets` changes when the frame is mirrored left-right.

    Returns:
        ``perm`` (K,) and ``sign`` (K,) with ``flipped = targets[:, perm] * sign``: x values
        change sign (the frame is centred on 0) and left/right joints swap.
    """

    def mirror(name: str) -> str:
        return name[:-1] + {"l": "r", "r": "l"}[name[-1]] if name[-2:] in ("_l", "_r") else name

    rel_joints = [n for n in JOINTS if n != "pelvis"]
    perm, sign = [], []
    for names, offset in ((list(JOINTS), 0), (rel_joints, 2 * len(JOINTS))):
        for name in names:
            k = offset + 2 * names.index(mirror(name))
            perm += [k, k + 1]
            sign += [-1.0, 1.0]
    perm.append(4 * len(JOINTS) - 2)  # torso length
    sign.append(1.0)
    return np.array(perm), np.array(sign, np.float32)


# --------------------------------------------------------------------------- drawing


def _render(plan: _Plan) -> list[np.ndarray]:
    xy, depth = _keypoints(plan)
    size = plan.background.shape[0]
    noise_rng = np.random.default_rng(plan.noise_seed)
    half_width = round(plan.noise * math.sqrt(3.0))  # std of U{-a..a} is about a / sqrt(3)
    small = max(16, int(round(size * plan.low_res)))
    frames = []
    for i in range(plan.num_frames):
        img = plan.background.copy()
        draw_figure(img, xy[i], depth[i], plan.look, plan.scale, plan.body)
        if plan.occluder is not None:
            plan.occluder.draw(img)
        img = cv2.warpAffine(
            img, plan.camera[i], (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
        )
        if small < size:  # a low-resolution camera, scaled back up
            img = cv2.resize(cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                             interpolation=cv2.INTER_LINEAR)
        if plan.blur > 0.05:
            img = cv2.GaussianBlur(img, (0, 0), plan.blur)
        img = np.clip(img * (plan.light * float(plan.gain[i])), 0, 255).astype(np.uint8)
        if half_width > 0:
            # Uniform integer noise of the planned std: far cheaper than Gaussian draws.
            noise = noise_rng.integers(-half_width, half_width + 1, size=img.shape, dtype=np.int16)
            img = cv2.add(img, noise, dtype=cv2.CV_8U)
        frames.append(img)
    return frames


def render_clip(
    label: str, seed: int, cfg: VideoCorpusConfig, style: str = "stick", variant: str = ""
) -> tuple[list[np.ndarray], float]:
    """Renders one clip; the same ``(label, seed, cfg, style, variant)`` always gives identical
    frames (``variant`` "" = the seen variant that the seed chooses).

    ``stand_up``/``lower_arms`` are ``sit_down``/``raise_arms`` of the same seed reversed.

    Returns:
        frames: T arrays (frame_size, frame_size, 3) uint8 BGR.
        fps: Frame rate of the clip.
    """
    plan = _plan(ClipSpec(label, seed, style, variant), cfg)
    frames = _render(plan)
    if plan.reverse:
        frames.reverse()
    return frames, plan.fps


# --------------------------------------------------------------------------- corpus


def _clip_path(out_dir: Path, split: str, label: str, seed: int, cfg: VideoCorpusConfig) -> Path:
    return out_dir / "videos" / split / label / f"{label}-{seed}.{cfg.container}"


def _existing_valid(
    path: Path, label: str, seed: int, cfg: VideoCorpusConfig
) -> tuple[Path, VideoInfo] | None:
    n, fps = clip_length(label, seed, cfg)
    for cand in (path, path.with_suffix(".avi")):
        if not cand.is_file():
            continue
        try:
            info = probe_video(cand)
        except VideoError:
            continue
        if (info.num_frames, info.width, info.height) == (
            n,
            cfg.frame_size,
            cfg.frame_size,
        ) and abs(info.fps - fps) < 1e-3:
            return cand, info
    return None


_Job = tuple[Path, str, ClipSpec, VideoCorpusConfig, bool]


def _make_clip(job: _Job) -> dict[str, Any]:
    """Worker: renders and writes one clip unless a valid one exists; returns its record."""
    out_dir, split, spec, cfg, reuse = job
    label, seed = spec.label, spec.seed
    path = _clip_path(out_dir, split, label, seed, cfg)
    found = _existing_valid(path, label, seed, cfg) if reuse else None
    if found is None:
        frames, fps = render_clip(label, seed, cfg, spec.style, spec.variant)
        fourcc = "mp4v" if cfg.container == "mp4" else "MJPG"
        found = write_video_checked(path, frames, fps, fourcc=fourcc)
    written, info = found
    return {
        "id": f"{label}-{seed}",
        "video_filepath": str(written.resolve()),
        "label": label,
        "num_frames": int(info.num_frames),
        "fps": float(info.fps),
        "seed": int(seed),
        "style": spec.style,
        "motion": f"{LABEL_MOTION[label][0]}.{motion_variant(label, seed, cfg, spec.variant)}",
    }


def _init_worker() -> None:
    # Each worker is one of num_workers processes on the machine's cores; OpenCV's own
    # thread pool inside each would only oversubscribe them (small frames, many clips).
    cv2.setNumThreads(1)


def _safe_make_clip(job: _Job) -> dict[str, Any] | str:
    try:
        return _make_clip(job)
    except Exception as exc:  # one bad clip must not stop the others
        return f"{job[2].label}-{job[2].seed}: {type(exc).__name__}: {exc}"


def _run_jobs(fn: Any, jobs: list, num_workers: int) -> list:
    """``[fn(job) for job in jobs]``, in ``num_workers`` processes when there are several."""
    if num_workers <= 1:
        return [fn(job) for job in jobs]
    # spawn: forking a process that already runs OpenCV's thread pool can deadlock.
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=num_workers, mp_context=ctx, initializer=_init_worker) as pool:
        return list(pool.map(fn, jobs, chunksize=max(1, len(jobs) // (8 * num_workers))))


def generate_video_corpus(
    out_dir: str | Path, cfg: VideoCorpusConfig, *, num_workers: int = 2
) -> dict[str, Path]:
    """Renders the corpus and writes ``train/dev/test.jsonl`` video manifests.

    Resumable: a clip whose file exists and decodes with the expected length, size and fps
    is kept; a ``.done`` marker matching the config skips the whole stage. Manifests are
    written last, atomically, and only when every clip succeeded.

    Args:
        out_dir: Corpus directory.
        cfg: Corpus config (see :data:`SIZES`).
        num_workers: Processes rendering clips (<= 1 renders in this process).

    Returns:
        ``{split: manifest path}``.

    Raises:
        VideoCorpusError: some clips failed (all others are still written).
    """
    out_dir = Path(out_dir)
    manifests = {split: out_dir / f"{split}.jsonl" for split in SPLITS}
    chash = config_hash({"cfg": asdict(cfg), "render_version": RENDER_VERSION, "classes": CLASSES})
    marker = out_dir / ".done"
    if marker_matches(marker, chash) and all(p.is_file() for p in manifests.values()):
        log.info("video corpus in %s is up to date (config %s)", out_dir, chash)
        return manifests
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg_file = out_dir / "corpus_config.json"
    reuse = marker_matches(cfg_file, chash)
    if cfg_file.exists() and not reuse:
        log.info("%s: config changed; re-rendering every clip", out_dir)
    marker.unlink(missing_ok=True)
    write_marker(cfg_file, chash, config=asdict(cfg), render_version=RENDER_VERSION)

    jobs = [
        (out_dir, split, spec, cfg, reuse)
        for split in SPLITS
        for spec in clip_specs(cfg, split)
    ]
    start = time.perf_counter()
    results = _run_jobs(_safe_make_clip, jobs, num_workers)
    errors = [r for r in results if isinstance(r, str)]
    for err in errors:
        log.error("video corpus clip failed: %s", err)
    if errors:
        raise VideoCorpusError(
            f"{out_dir}: {len(errors)} of {len(jobs)} clips failed; first: {errors[0]}"
        )
    log.info("rendered/checked %d clips in %.1fs", len(jobs), time.perf_counter() - start)

    by_split: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    for job, rec in zip(jobs, results, strict=True):
        by_split[job[1]].append(rec)
    for split, path in manifests.items():
        write_manifest(path, by_split[split], "video")
    write_marker(marker, chash, clips={s: len(r) for s, r in by_split.items()})
    return manifests
