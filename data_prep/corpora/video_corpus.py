"""Synthetic action-video corpus: an articulated figure acting out 10 classes, via OpenCV.

Each clip is rendered from its own integer seed, which fixes everything about it: body size
and proportions, position, speed and phase of the action, limb thickness and colours, the
background (gradient, noise texture, clutter), camera jitter, zoom and roll, blur, noise,
clip length and frame rate. Train, dev and test draw seeds from disjoint ranges, so no test
clip shares a seed with a training clip; classes are balanced.

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
    Body,
    J,
    Motion,
    forward_kinematics,
    project,
    sample_motion,
)
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
RENDER_VERSION = 2  # 2: forearms and hands in a skin colour that stands out from the shirt
#: Seed layout: cfg.seed * _SEED_BLOCK + split offset + class index * _CLASS_BLOCK + k.
_SEED_BLOCK = 10_000_000
_SPLIT_OFFSET = {"train": 0, "dev": 3_000_000, "test": 6_000_000}
_CLASS_BLOCK = 100_000


class VideoCorpusError(SeqrecError, RuntimeError):
    """Generating the corpus failed for some clips (the message lists them)."""


@dataclass(frozen=True)
class VideoCorpusConfig:
    """Size and rendering settings of the synthetic video corpus.

    Attributes:
        train_per_class / dev_per_class / test_per_class: Clips per class in each split.
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
    seed: int = 0
    frame_size: int = 112
    min_frames: int = 24
    max_frames: int = 48
    min_fps: int = 12
    max_fps: int = 30
    nuisance: float = 1.0
    container: str = "mp4"

    def __post_init__(self) -> None:
        for name in ("train_per_class", "dev_per_class", "test_per_class"):
            n = getattr(self, name)
            if not 0 <= n < _CLASS_BLOCK:
                raise ValueError(f"{name} must be in [0, {_CLASS_BLOCK}), got {n}")
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
        """Clips per class in ``split``."""
        return getattr(self, f"{split}_per_class")


SIZES: dict[str, VideoCorpusConfig] = {
    "tiny": VideoCorpusConfig(
        train_per_class=3,
        dev_per_class=2,
        test_per_class=2,
        frame_size=64,
        min_frames=16,
        max_frames=24,
    ),
    "default": VideoCorpusConfig(),
    "large": VideoCorpusConfig(train_per_class=200, dev_per_class=30, test_per_class=50),
}


def clip_seeds(cfg: VideoCorpusConfig, split: str) -> list[tuple[str, int]]:
    """``(label, seed)`` for every clip of a split; seed ranges of splits never overlap."""
    base = cfg.seed * _SEED_BLOCK + _SPLIT_OFFSET[split]
    return [
        (label, base + c * _CLASS_BLOCK + k)
        for c, label in enumerate(CLASSES)
        for k in range(cfg.per_class(split))
    ]


# --------------------------------------------------------------------------- clip plan


def _rngs(label: str, seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Generators for a clip: (length/fps, everything else). Reversed pairs share them."""
    if label not in LABEL_MOTION:
        raise ValueError(f"unknown label {label!r}; expected one of {CLASSES}")
    kind, _ = LABEL_MOTION[label]
    # A stable key per base motion (never hash(), which is salted per process).
    key = ["walk", "sit", "raise", "jump", "squat", "wave", "clap"].index(kind)
    if kind == "walk":
        key += 10 * CLASSES.index(label)
    return np.random.default_rng([seed, key, 0]), np.random.default_rng([seed, key, 1])


def clip_length(label: str, seed: int, cfg: VideoCorpusConfig) -> tuple[int, float]:
    """``(num_frames, fps)`` of a clip, without rendering it."""
    rng, _ = _rngs(label, seed)
    n = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
    fps = float(rng.integers(cfg.min_fps, cfg.max_fps + 1))
    return n, fps


@dataclass(frozen=True)
class _Plan:
    num_frames: int
    fps: float
    reverse: bool
    body: Body
    motion: Motion
    yaw: float
    scale: float  # pixels per body unit (standing height)
    origin: tuple[float, float]  # screen (x, ground y) of the pelvis at t = 0
    thickness: float  # limb thickness in body units
    colours: dict[str, tuple[int, int, int]]
    background: np.ndarray
    jitter: np.ndarray  # (T, 2) camera shift in pixels
    zoom: np.ndarray  # (T,)
    roll: np.ndarray  # (T,) degrees
    blur: float
    noise: float
    gain: np.ndarray  # (T,)
    noise_seed: int


def _luma(c: np.ndarray) -> float:
    return float(0.114 * c[0] + 0.587 * c[1] + 0.299 * c[2])  # BGR


def _colour_against(
    rng: np.random.Generator, bg_luma: float, min_diff: float = 70.0
) -> tuple[int, int, int]:
    """A random BGR colour pushed to differ in luminance from ``bg_luma`` by ``min_diff``."""
    c = rng.uniform(0, 255, size=3)
    diff = _luma(c) - bg_luma
    if abs(diff) < min_diff:
        target = bg_luma + min_diff if bg_luma < 128 else bg_luma - min_diff
        c = np.clip(c + (target - _luma(c)), 0, 255)
    return (int(c[0]), int(c[1]), int(c[2]))


def _skin_colour(
    rng: np.random.Generator, bg_luma: float, shirt: tuple[int, int, int], min_dist: float = 100.0
) -> tuple[int, int, int]:
    """A colour for head, forearms and hands that stands out from the background and the shirt.

    Hands in front of the torso (clap, lower_arms) must stay visible, so the skin also differs
    from the shirt (Euclidean BGR distance): the best of a few random draws is kept.
    """
    best, best_dist = shirt, -1.0
    for _ in range(12):
        c = _colour_against(rng, bg_luma, 60.0)
        dist = float(np.linalg.norm(np.subtract(c, shirt, dtype=np.float64)))
        if dist > best_dist:
            best, best_dist = c, dist
        if dist >= min_dist:
            break
    return best


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random static background: gradient or noise texture, optional clutter and floor."""
    base_luma = rng.uniform(25, 230)
    c1 = np.clip(rng.normal(base_luma, 35, size=3), 0, 255)
    c2 = np.clip(c1 + rng.normal(0, 45, size=3), 0, 255)
    if rng.random() < 0.5:  # linear gradient at a random angle
        a = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        w = xx * math.cos(a) + yy * math.sin(a)
        w = (w - w.min()) / max(1e-6, float(w.max() - w.min()))
        img = c1[None, None, :] * (1 - w[..., None]) + c2[None, None, :] * w[..., None]
    else:  # smooth noise texture, upsampled from a coarse random grid
        cells = int(rng.integers(3, 17))
        coarse = rng.uniform(0, 1, size=(cells, cells, 1)).astype(np.float32)
        w = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)
        img = c1[None, None, :] * (1 - w[..., None]) + c2[None, None, :] * w[..., None]
    img = np.ascontiguousarray(img.astype(np.uint8))
    if rng.random() < 0.5:  # a floor band below a horizon line
        horizon = int(rng.uniform(0.55, 0.85) * size)
        floor = np.clip(c1 + rng.normal(0, 40, size=3), 0, 255)
        img[horizon:] = (0.5 * img[horizon:] + 0.5 * floor).astype(np.uint8)
    if rng.random() < 0.6:  # clutter: random shapes
        for _ in range(int(rng.integers(3, 14))):
            col = tuple(int(v) for v in np.clip(c1 + rng.normal(0, 60, size=3), 0, 255))
            kind = rng.integers(0, 3)
            p = rng.uniform(-0.1, 1.1, size=2) * size
            if kind == 0:
                q = p + rng.uniform(-0.3, 0.3, size=2) * size
                cv2.rectangle(img, tuple(int(v) for v in p), tuple(int(v) for v in q), col, -1)
            elif kind == 1:
                r = int(rng.uniform(0.02, 0.15) * size)
                cv2.circle(img, tuple(int(v) for v in p), r, col, -1, cv2.LINE_AA)
            else:
                q = p + rng.uniform(-0.5, 0.5, size=2) * size
                th = int(rng.integers(1, max(2, size // 40) + 1))
                cv2.line(
                    img, tuple(int(v) for v in p), tuple(int(v) for v in q), col, th, cv2.LINE_AA
                )
    if rng.random() < 0.4:  # fine-grained static texture
        img = np.clip(img + rng.normal(0, rng.uniform(3, 12), size=img.shape), 0, 255).astype(
            np.uint8
        )
    return img


def _smooth_walk(rng: np.random.Generator, n: int, step: float) -> np.ndarray:
    """A smooth random camera path (n, 2) with zero mean."""
    walk = np.cumsum(rng.normal(0, step, size=(n, 2)), axis=0)
    kernel = np.array([1.0, 2.0, 3.0, 2.0, 1.0]) / 9.0
    walk = np.stack(
        [np.convolve(np.pad(w, 2, mode="edge"), kernel, mode="valid") for w in walk.T], 1
    )
    return walk - walk.mean(axis=0)


def _plan(label: str, seed: int, cfg: VideoCorpusConfig) -> _Plan:
    n, fps = clip_length(label, seed, cfg)
    _, rng = _rngs(label, seed)
    size = cfg.frame_size
    motion, yaw = sample_motion(label, rng)
    body = Body.sample(rng)
    kind = motion.kind
    height_frac = rng.uniform(0.38, 0.5) if kind == "jump" else rng.uniform(0.45, 0.68)
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
    background = _background(rng, size)
    bg_luma = float(background.mean(axis=(0, 1)) @ np.array([0.114, 0.587, 0.299]))
    shirt = _colour_against(rng, bg_luma)
    colours = {
        "shirt": shirt,
        "trousers": _colour_against(rng, bg_luma),
        "skin": _skin_colour(rng, bg_luma, shirt),
    }
    k = cfg.nuisance
    jitter = _smooth_walk(rng, n, rng.uniform(0.0, 0.5) * k * size / 112) + rng.normal(
        0, rng.uniform(0.0, 0.6) * k * size / 112, size=(n, 2)
    )
    z0, z1 = 1.0 + rng.uniform(-0.1, 0.1, size=2) * k
    zoom = np.linspace(z0, z1, n)
    roll = rng.uniform(-3, 3) * k + np.linspace(0, rng.uniform(-2, 2) * k, n)
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
        scale=scale,
        origin=(origin_x, ground),
        thickness=rng.uniform(0.035, 0.06),
        colours=colours,
        background=background,
        jitter=jitter,
        zoom=zoom,
        roll=roll,
        blur=blur,
        noise=noise,
        gain=gain,
        noise_seed=int(rng.integers(0, 2**31)),
    )


def _keypoints(plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """Screen joints (T, J, 2) and depths (T, J) in the motion's own time order."""
    n = plan.num_frames
    xy = np.zeros((n, len(JOINTS), 2))
    depth = np.zeros((n, len(JOINTS)))
    for i in range(n):
        t = i / (n - 1)
        pts = forward_kinematics(plan.motion.pose(t), plan.body)
        xy[i], depth[i] = project(pts, plan.yaw, plan.scale, plan.origin)
    return xy, depth


def clip_keypoints(label: str, seed: int, cfg: VideoCorpusConfig) -> np.ndarray:
    """2-D joints of a clip before the camera moves, in the clip's frame order.

    Returns:
        (T, J, 2) float pixel coordinates; joint order is ``video_figure.JOINTS``.
    """
    xy, _ = _keypoints(_plan(label, seed, cfg))
    return xy[::-1].copy() if LABEL_MOTION[label][1] else xy


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

_SHIFT = 4  # sub-pixel drawing: coordinates in 1/16 pixel
_ONE = 1 << _SHIFT


def _shade(c: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return tuple(int(min(255, v * f)) for v in c)  # type: ignore[return-value]


def _draw_figure(img: np.ndarray, xy: np.ndarray, depth: np.ndarray, plan: _Plan) -> None:
    """Draws the figure far-to-near: limbs as thick lines, torso, head as an ellipse."""
    fp = [tuple(p) for p in np.round(xy * _ONE).astype(np.int64).tolist()]  # fixed point
    s = plan.scale
    th = max(2, int(round(plan.thickness * s)))
    col = plan.colours
    parts: list[tuple[float, str, Any]] = []
    for side in "lr":
        near = depth[J[f"hip_{side}"]] >= depth[J["pelvis"]]
        f = 1.0 if near else 0.72  # far limbs are shaded darker
        # Sleeve (upper arm) in the shirt's colour, forearm and hand in skin colour.
        chains = (
            (("shoulder", "elbow"), _shade(col["shirt"], f), th),
            (("elbow", "wrist"), _shade(col["skin"], f), th),
            (("hip", "knee", "ankle", "toe"), _shade(col["trousers"], f), int(th * 1.25)),
        )
        for names, c, w in chains:
            pts = [fp[J[f"{n}_{side}"]] for n in names]
            d = sum(float(depth[J[f"{n}_{side}"]]) for n in names) / len(names)
            parts.append((d, "chain", (pts, c, w)))
        hand = fp[J[f"wrist_{side}"]]
        parts.append((float(depth[J[f"wrist_{side}"]]) + 1e-3, "hand", (hand, _shade(col["skin"], f), th)))
    # The torso goes first among equals, so arms level with it are drawn over it.
    parts.append((float(depth[J["neck"]] + depth[J["pelvis"]]) / 2 - 1e-3, "torso", None))
    parts.sort(key=lambda p: p[0])
    for _, kind, data in parts:
        if kind == "chain":
            pts, c, w = data
            for a, b in zip(pts[:-1], pts[1:], strict=False):
                cv2.line(img, a, b, c, w, cv2.LINE_AA, _SHIFT)
        elif kind == "hand":
            centre, c, w = data
            cv2.circle(img, centre, int(w * 0.9 * _ONE), c, -1, cv2.LINE_AA, _SHIFT)
        else:
            quad = np.array(
                [fp[J[n]] for n in ("shoulder_l", "shoulder_r", "hip_r", "hip_l")], np.int32
            )
            cv2.fillConvexPoly(img, cv2.convexHull(quad), col["shirt"], cv2.LINE_AA, _SHIFT)
            cv2.line(
                img,
                fp[J["pelvis"]],
                fp[J["neck"]],
                col["shirt"],
                int(th * 1.8),
                cv2.LINE_AA,
                _SHIFT,
            )
            head = fp[J["head"]]
            r = plan.body.head_r * s
            cv2.ellipse(
                img,
                head,
                (int(r * _ONE), int(r * 1.15 * _ONE)),
                0,
                0,
                360,
                col["skin"],
                -1,
                cv2.LINE_AA,
                _SHIFT,
            )


def _render(plan: _Plan) -> list[np.ndarray]:
    xy, depth = _keypoints(plan)
    size = plan.background.shape[0]
    noise_rng = np.random.default_rng(plan.noise_seed)
    half_width = round(plan.noise * math.sqrt(3.0))  # std of U{-a..a} is about a / sqrt(3)
    frames = []
    for i in range(plan.num_frames):
        img = plan.background.copy()
        _draw_figure(img, xy[i], depth[i], plan)
        m = cv2.getRotationMatrix2D((size / 2, size / 2), float(plan.roll[i]), float(plan.zoom[i]))
        m[:, 2] += plan.jitter[i]
        img = cv2.warpAffine(
            img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
        )
        if plan.blur > 0.05:
            img = cv2.GaussianBlur(img, (0, 0), plan.blur)
        img = cv2.convertScaleAbs(img, alpha=float(plan.gain[i]))  # saturating brightness
        if half_width > 0:
            # Uniform integer noise of the planned std: far cheaper than Gaussian draws.
            noise = noise_rng.integers(-half_width, half_width + 1, size=img.shape, dtype=np.int16)
            img = cv2.add(img, noise, dtype=cv2.CV_8U)
        frames.append(img)
    return frames


def render_clip(label: str, seed: int, cfg: VideoCorpusConfig) -> tuple[list[np.ndarray], float]:
    """Renders one clip; the same ``(label, seed, cfg)`` always gives identical frames.

    ``stand_up``/``lower_arms`` are ``sit_down``/``raise_arms`` of the same seed reversed.

    Returns:
        frames: T arrays (frame_size, frame_size, 3) uint8 BGR.
        fps: Frame rate of the clip.
    """
    plan = _plan(label, seed, cfg)
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


def _make_clip(job: tuple[Path, str, str, int, VideoCorpusConfig, bool]) -> dict[str, Any]:
    """Worker: renders and writes one clip unless a valid one exists; returns its record."""
    out_dir, split, label, seed, cfg, reuse = job
    path = _clip_path(out_dir, split, label, seed, cfg)
    found = _existing_valid(path, label, seed, cfg) if reuse else None
    if found is None:
        frames, fps = render_clip(label, seed, cfg)
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
    }


def _init_worker() -> None:
    # Each worker is one of num_workers processes on the machine's cores; OpenCV's own
    # thread pool inside each would only oversubscribe them (small frames, many clips).
    cv2.setNumThreads(1)


def _safe_make_clip(
    job: tuple[Path, str, str, int, VideoCorpusConfig, bool],
) -> dict[str, Any] | str:
    try:
        return _make_clip(job)
    except Exception as exc:  # one bad clip must not stop the others
        return f"{job[2]}-{job[3]}: {type(exc).__name__}: {exc}"


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
        (out_dir, split, label, seed, cfg, reuse)
        for split in SPLITS
        for label, seed in clip_seeds(cfg, split)
    ]
    start = time.perf_counter()
    if num_workers <= 1:
        results = [_safe_make_clip(job) for job in jobs]
    else:
        # spawn: forking a process that already runs OpenCV's thread pool can deadlock.
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=num_workers, mp_context=ctx, initializer=_init_worker
        ) as pool:
            results = list(
                pool.map(_safe_make_clip, jobs, chunksize=max(1, len(jobs) // (8 * num_workers)))
            )
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
