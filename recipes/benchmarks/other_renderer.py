#!/usr/bin/env python3
"""Clips of the ten actions from a second, independent renderer, labelled by a video bundle.

    python recipes/benchmarks/other_renderer.py --model exp/video_activity/bundle [--per-class 20]

The embedded corpus's held-out style and held-out ways of acting still come from its own
generator: the same figure, limbs, kinematics, cameras and scenes. This renderer shares none of
its code. A person is drawn front-on with filled shapes and other proportions (a bigger head, a
shirt, trousers, shoes), in a furnished room (a wall, a floor, a table, a plant, a picture, a
chair), and performs each action its own way: a brisk walk with a wide arm swing, a sit onto
a visible chair, arms raised out to the sides, a jump with an arm swing and a crouch before
and after, a squat with the hands sliding to the knees, a wave beside the head with the other hand on
the hip, claps above the chest. A model that learned the actions, not the corpus's motions and
drawings, labels these clips; one that learned the generator does not. Nothing here is used in
training, so its top-1 is a held-out result about the world outside the generator.

Prints top-1 and the confusions, and writes ``<out>/other_renderer.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

if not __package__:  # run as a script: the checkout, not this folder, goes first on sys.path
    sys.path[0] = str(Path(__file__).resolve().parents[2])

ACTIONS = ("walk_left", "walk_right", "sit_down", "stand_up", "raise_arms", "lower_arms", "jump", "squat", "wave", "clap")
WIDTH, HEIGHT, FPS = 160, 120, 25.0


@dataclass
class Pose:
    """A front-on pose: where the pelvis is (pixels), how low the hips sit (0 standing, 1 a
    full crouch), and per side the arm's angle out from hanging (radians; pi is straight up),
    the elbow's bend, and the leg's angle out from vertical and the knee's lift."""

    x: float
    lift: float = 0.0  # pixels above the floor (a jump)
    crouch: float = 0.0
    arm: tuple[float, float] = (0.15, 0.15)  # left, right (the figure's own)
    elbow: tuple[float, float] = (0.1, 0.1)
    leg: tuple[float, float] = (0.05, 0.05)
    knee: tuple[float, float] = (0.0, 0.0)
    hands_in: float = 0.0  # 0: arms follow their angles; 1: both hands meet in front of the chest
    facing: int = 0  # 0: front-on; -1 or 1: in profile, facing left or right (a walk, a sit)


class Person:
    """One performer's look and proportions (random per clip)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.scale = rng.uniform(0.85, 1.1)
        self.shirt = tuple(int(v) for v in rng.integers(30, 230, 3))
        self.trousers = tuple(int(v) for v in rng.integers(20, 160, 3))
        self.skin = tuple(int(v) for v in (rng.uniform(60, 200), rng.uniform(90, 210), rng.uniform(140, 235)))
        self.hair = tuple(int(v) for v in rng.integers(0, 90, 3))
        self.shoes = tuple(int(v) for v in rng.integers(0, 70, 3))

    def draw(self, img: np.ndarray, p: Pose, floor: float) -> None:
        if p.facing:
            self.draw_profile(img, p, floor)
            return
        s = self.scale
        leg_len, shin, thigh_w = 24 * s, 0.5, max(3, int(5 * s))
        hip_y = floor - p.lift - leg_len * (1.0 - 0.45 * p.crouch)
        torso_h, shoulder_w, hip_w = 26 * s, 10 * s, 7 * s
        neck = (p.x, hip_y - torso_h)
        # legs: hip -> knee -> foot; a crouch spreads the knees outward
        for side, sign in ((0, -1), (1, 1)):
            hip = (p.x + sign * hip_w * 0.6, hip_y)
            spread = p.leg[side] + 0.5 * p.crouch
            knee = (hip[0] + sign * math.sin(spread) * leg_len * 0.5, hip[1] + math.cos(spread) * leg_len * 0.5 * (1 - 0.5 * p.crouch) - p.knee[side] * 6 * s)
            foot = (knee[0] - sign * 0.3 * p.crouch * leg_len * shin, min(floor - p.lift, knee[1] + leg_len * 0.5))
            cv2.line(img, _pt(hip), _pt(knee), self.trousers, thigh_w, cv2.LINE_AA)
            cv2.line(img, _pt(knee), _pt(foot), self.trousers, thigh_w, cv2.LINE_AA)
            cv2.ellipse(img, _pt((foot[0] + sign * 2 * s, foot[1])), (int(4 * s), int(2 * s)), 0, 0, 360, self.shoes, -1, cv2.LINE_AA)
        # torso: a filled shirt, wider at the shoulders
        torso = np.array([_pt((p.x - shoulder_w, neck[1] + 2)), _pt((p.x + shoulder_w, neck[1] + 2)),
                          _pt((p.x + hip_w, hip_y + 2)), _pt((p.x - hip_w, hip_y + 2))], np.int32)
        cv2.fillConvexPoly(img, torso, self.shirt, cv2.LINE_AA)
        # arms: shoulder -> elbow -> hand, in the shirt's colour then skin
        upper, fore = 12 * s, 11 * s
        chest = (p.x, neck[1] + torso_h * 0.35)
        for side, sign in ((0, -1), (1, 1)):
            sh = (p.x + sign * shoulder_w, neck[1] + 3)
            a = p.arm[side]
            el = (sh[0] + sign * math.sin(a) * upper, sh[1] + math.cos(a) * upper)
            b = a + p.elbow[side]
            hand = (el[0] + sign * math.sin(b) * fore, el[1] + math.cos(b) * fore)
            if p.hands_in > 0:  # hands drawn to the chest's front (a clap)
                t = p.hands_in
                target = (chest[0] + sign * 1.5, chest[1] - 4 * s)
                el = (el[0] * (1 - t) + (sh[0] + target[0]) / 2 * t, el[1] * (1 - t) + (sh[1] + 8 * s) * t)
                hand = (hand[0] * (1 - t) + target[0] * t, hand[1] * (1 - t) + target[1] * t)
            cv2.line(img, _pt(sh), _pt(el), self.shirt, max(3, int(4 * s)), cv2.LINE_AA)
            cv2.line(img, _pt(el), _pt(hand), self.skin, max(2, int(3 * s)), cv2.LINE_AA)
            cv2.circle(img, _pt(hand), max(2, int(2.5 * s)), self.skin, -1, cv2.LINE_AA)
        # head: a neck, a face, hair on top
        head = (p.x, neck[1] - 9 * s)
        cv2.line(img, _pt(neck), _pt((p.x, neck[1] - 3)), self.skin, max(2, int(3 * s)), cv2.LINE_AA)
        cv2.circle(img, _pt(head), int(8 * s), self.skin, -1, cv2.LINE_AA)
        cv2.ellipse(img, _pt((head[0], head[1] - 3 * s)), (int(8 * s), int(5 * s)), 0, 180, 360, self.hair, -1, cv2.LINE_AA)


    def draw_profile(self, img: np.ndarray, p: Pose, floor: float) -> None:
        """The person seen from the side, facing ``p.facing``: each leg swings forward by its
        ``leg`` angle (a sit: thighs level, ``crouch`` 1) and each arm by its ``arm`` angle."""
        s, f = self.scale, p.facing
        leg_len = 24 * s
        thigh, shin = leg_len * 0.5, leg_len * 0.5
        hip_y = floor - p.lift - leg_len + p.crouch * shin * 0.9
        torso_h = 26 * s
        neck = (p.x, hip_y - torso_h)
        for side in (0, 1):  # the far leg first, darker
            colour = tuple(int(c * (0.7 if side == 0 else 1.0)) for c in self.trousers)
            a = p.leg[side] + p.crouch * math.pi / 2
            knee = (p.x + f * math.sin(a) * thigh, hip_y + math.cos(a) * thigh)
            b = a - p.knee[side] - p.crouch * math.pi / 2
            foot = (knee[0] + f * math.sin(b) * shin, min(floor - p.lift, knee[1] + math.cos(b) * shin))
            cv2.line(img, _pt((p.x, hip_y)), _pt(knee), colour, max(3, int(5 * s)), cv2.LINE_AA)
            cv2.line(img, _pt(knee), _pt(foot), colour, max(3, int(5 * s)), cv2.LINE_AA)
            cv2.ellipse(img, _pt((foot[0] + f * 2 * s, foot[1])), (int(4 * s), int(2 * s)), 0, 0, 360, self.shoes, -1, cv2.LINE_AA)
        cv2.line(img, _pt((p.x, hip_y)), _pt((p.x, neck[1] + 3)), self.shirt, max(6, int(9 * s)), cv2.LINE_AA)
        upper, fore = 12 * s, 11 * s
        for side in (0, 1):
            a = p.arm[side]
            sh = (p.x, neck[1] + 4)
            el = (sh[0] + f * math.sin(a) * upper, sh[1] + math.cos(a) * upper)
            b = a + p.elbow[side]
            hand = (el[0] + f * math.sin(b) * fore, el[1] + math.cos(b) * fore)
            cv2.line(img, _pt(sh), _pt(el), self.shirt, max(3, int(4 * s)), cv2.LINE_AA)
            cv2.line(img, _pt(el), _pt(hand), self.skin, max(2, int(3 * s)), cv2.LINE_AA)
        head = (p.x + f * 1.5 * s, neck[1] - 9 * s)
        cv2.circle(img, _pt(head), int(8 * s), self.skin, -1, cv2.LINE_AA)
        cv2.circle(img, _pt((head[0] + f * 8 * s, head[1] + 1)), max(1, int(1.5 * s)), self.skin, -1, cv2.LINE_AA)
        cv2.ellipse(img, _pt((head[0] - f * 2 * s, head[1] - 3 * s)), (int(8 * s), int(5 * s)), 0, 180, 360, self.hair, -1, cv2.LINE_AA)


def _pt(xy: tuple[float, float]) -> tuple[int, int]:
    return int(round(xy[0])), int(round(xy[1]))


class Room:
    """A furnished room: wall, floor, and furniture placed at random (random colours)."""

    def __init__(self, rng: np.random.Generator, chair_x: float | None, chair_back: int = -1) -> None:
        self.wall = tuple(int(v) for v in rng.integers(120, 240, 3))
        self.floor_c = tuple(int(v) for v in rng.integers(40, 150, 3))
        self.floor = rng.uniform(0.78, 0.9) * HEIGHT
        self.table_x = rng.uniform(0, WIDTH)
        self.plant_x = rng.uniform(0, WIDTH)
        self.picture = (rng.uniform(10, WIDTH - 40), rng.uniform(8, 30))
        self.colours = [tuple(int(v) for v in rng.integers(0, 255, 3)) for _ in range(4)]
        self.chair_x, self.chair_back = chair_x, chair_back

    def draw(self) -> np.ndarray:
        img = np.empty((HEIGHT, WIDTH, 3), np.uint8)
        img[:] = self.wall
        f = int(self.floor)
        img[f:] = self.floor_c
        px, py = self.picture
        cv2.rectangle(img, _pt((px, py)), _pt((px + 26, py + 18)), self.colours[0], -1)
        cv2.rectangle(img, _pt((px, py)), _pt((px + 26, py + 18)), (30, 30, 30), 1)
        tx = self.table_x
        cv2.rectangle(img, _pt((tx - 18, f - 22)), _pt((tx + 18, f - 19)), self.colours[1], -1)
        for leg in (tx - 16, tx + 14):
            cv2.rectangle(img, _pt((leg, f - 19)), _pt((leg + 2, f)), self.colours[1], -1)
        cv2.rectangle(img, _pt((self.plant_x - 4, f - 10)), _pt((self.plant_x + 4, f)), self.colours[2], -1)
        cv2.circle(img, _pt((self.plant_x, f - 16)), 8, (40, 140, 50), -1, cv2.LINE_AA)
        if self.chair_x is not None:  # the seat a sit-down lands on
            cx = self.chair_x
            cv2.rectangle(img, _pt((cx - 12, f - 16)), _pt((cx + 12, f - 13)), self.colours[3], -1)
            back, front = cx + self.chair_back * 10.5, cx - self.chair_back * 10.5
            cv2.rectangle(img, _pt((back - 1.5, f - 36)), _pt((back + 1.5, f)), self.colours[3], -1)
            cv2.rectangle(img, _pt((front - 1.5, f - 13)), _pt((front + 1.5, f)), self.colours[3], -1)
        return img


def _ease(t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return t * t * (3 - 2 * t)


def poses(action: str, n: int, rng: np.random.Generator) -> list[Pose]:
    """The action's poses over ``n`` frames, performed this renderer's way (timing and
    amplitude vary by ``rng``)."""
    x0 = rng.uniform(0.35, 0.65) * WIDTH
    facing = int(rng.choice([-1, 1]))
    rate = rng.uniform(0.8, 1.25)
    out = []
    for i in range(n):
        t = i / max(n - 1, 1)
        ph = 2 * math.pi * rate * i / FPS
        if action in ("walk_left", "walk_right"):
            d = -1 if action == "walk_left" else 1
            swing = 0.55 * math.sin(2.2 * ph)
            x = x0 - d * 0.22 * WIDTH + d * 0.44 * WIDTH * t
            out.append(Pose(x, lift=abs(math.sin(2.2 * ph)) * 1.5, arm=(-0.7 * swing, 0.7 * swing), elbow=(0.3, 0.3),
                            leg=(0.45 * swing, -0.45 * swing), knee=(0.6 * max(swing, 0), 0.6 * max(-swing, 0)), facing=d))
        elif action in ("sit_down", "stand_up"):
            u = _ease((t - 0.15) / 0.6)
            u = u if action == "sit_down" else 1 - u
            out.append(Pose(x0, crouch=u, arm=(0.3 * u, 0.3 * u), elbow=(0.9 * u, 0.9 * u), facing=facing))
        elif action in ("raise_arms", "lower_arms"):
            u = _ease((t - 0.1) / 0.65)
            u = u if action == "raise_arms" else 1 - u
            a = 0.15 + u * (math.pi - 0.45)
            out.append(Pose(x0, arm=(a, a), elbow=(0.25 * u, 0.25 * u)))
        elif action == "jump":
            u = (t - 0.2) / 0.6  # crouch, take off, fly, land, crouch
            crouch = 0.5 * math.exp(-((u - 0.0) ** 2) / 0.01) + 0.5 * math.exp(-((u - 1.0) ** 2) / 0.01)
            lift = 20 * max(0.0, math.sin(math.pi * u)) if 0 < u < 1 else 0.0
            arms = 0.2 + (math.pi - 0.6) * max(0.0, math.sin(math.pi * min(max(u, 0), 1)))
            out.append(Pose(x0, lift=lift, crouch=crouch, arm=(arms, arms), elbow=(0.2, 0.2), knee=(crouch * 2, crouch * 2)))
        elif action == "squat":
            u = math.sin(math.pi * min(max((t - 0.1) / 0.8, 0), 1))
            out.append(Pose(x0, crouch=0.85 * u, arm=(0.15 + 0.35 * u, 0.15 + 0.35 * u), elbow=(-0.5 * u, -0.5 * u), knee=(1.6 * u, 1.6 * u)))
        elif action == "wave":
            up = _ease(t / 0.2) * (1 - _ease((t - 0.85) / 0.15))
            wag = 0.45 * math.sin(3.0 * ph) * up
            side = 1  # the figure's right hand waves; the left rests on the hip
            arm = [0.6, 0.15]
            elbow = [1.4, 0.1]
            arm[side] = 0.15 + up * 2.1
            elbow[side] = up * 0.7 + wag
            out.append(Pose(x0, arm=(arm[0], arm[1]), elbow=(elbow[0], elbow[1])))
        elif action == "clap":
            active = _ease(t / 0.15) * (1 - _ease((t - 0.9) / 0.1))
            beat = 0.5 + 0.5 * math.cos(2.6 * ph)
            out.append(Pose(x0, arm=(0.9 * active + 0.15, 0.9 * active + 0.15), elbow=(0.6 * active, 0.6 * active),
                            hands_in=active * beat))
        else:
            raise ValueError(f"unknown action {action!r}")
    return out


def render(action: str, seed: int) -> list[np.ndarray]:
    """One clip (BGR frames, WIDTH x HEIGHT) of ``action``; the same seed gives the same frames."""
    rng = np.random.default_rng([seed, ACTIONS.index(action), 77])
    n = int(rng.integers(50, 76))
    pose_list = poses(action, n, rng)
    chair = pose_list[0].x if action in ("sit_down", "stand_up") else None
    room, person = Room(rng, chair, -pose_list[0].facing), Person(rng)
    background = room.draw()
    noise = rng.uniform(2, 6)
    frames = []
    for p in pose_list:
        img = background.copy()
        person.draw(img, p, room.floor)
        img = np.clip(img.astype(np.float32) + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
        frames.append(img)
    return frames


def write_clips(out_dir: Path, per_class: int, seed: int = 0) -> list[tuple[Path, str]]:
    """``per_class`` mp4 clips per action under ``out_dir``; returns ``(path, action)``."""
    # lazy: the project's checked writer only where clips are written
    from data_prep.video_io import write_video_checked

    items = []
    for action in ACTIONS:
        for k in range(per_class):
            path = out_dir / f"{action}-{seed * 10_000 + k}.mp4"
            if not path.is_file():
                write_video_checked(path, render(action, seed * 10_000 + k), FPS)
            items.append((path, action))
    return items


def evaluate(model: Path, items: list[tuple[Path, str]]) -> dict:
    """Top-1 of the bundle on the clips, and its confusions (true -> predicted: count)."""
    from pipeline.inference.labeler import ClipLabeler

    labeler = ClipLabeler.from_pretrained(model)
    results = labeler.label([p for p, _ in items], top_k=1)
    confusions: dict[str, int] = {}
    right = 0
    per_class: dict[str, int] = {}
    for (path, truth), r in zip(items, results, strict=True):
        if r.error:
            raise RuntimeError(f"{path}: {r.error}")
        guess = r.labels[0]["label"]
        right += guess == truth
        per_class[truth] = per_class.get(truth, 0) + (guess == truth)
        if guess != truth:
            key = f"{truth} -> {guess}"
            confusions[key] = confusions.get(key, 0) + 1
    return {"model": str(model), "clips": len(items), "top1": round(right / len(items), 4),
            "per_class": per_class, "confusions": dict(sorted(confusions.items(), key=lambda kv: -kv[1]))}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", required=True, help="a video bundle (repeatable)")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clips", type=Path, default=None, help="where the clips go (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=None, help="writes other_renderer.json here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="seqrec-other-") as tmp:
        clips = args.clips or Path(tmp)
        clips.mkdir(parents=True, exist_ok=True)
        items = write_clips(clips, args.per_class, args.seed)
        report = {"per_class": args.per_class, "seed": args.seed, "models": [evaluate(m, items) for m in args.model]}
    for m in report["models"]:
        top = ", ".join(f"{k} {v}" for k, v in list(m["confusions"].items())[:5])
        print(f"{m['model']}: top-1 {100 * m['top1']:.1f}% of {m['clips']} clips; most confused: {top}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "other_renderer.json").write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
