"""Scenes for the synthetic action videos: backgrounds, furniture, occluders and lighting.

Everything here is drawn from a seeded ``numpy`` generator, so a clip's scene is fixed by its
seed. Sizes are in pixels of a square ``size x size`` BGR frame; ``scale`` is the figure's
standing height in pixels and ``ground`` the screen row of its feet, so that furniture and
occluders stand on the same floor and come in sizes that make sense next to the figure.

Backgrounds come in three kinds, open to every rendering style:

- ``plain``: a colour gradient or a smooth noise texture, with optional random clutter;
- ``room``: a wall (flat, striped or papered), a floor (plain, boards or tiles seen in
  perspective) and furniture (chairs, tables, shelves, doors, windows, plants, lamps);
- ``outdoor``: a sky gradient with clouds, grass or pavement, trees, poles and fences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

BACKGROUNDS = ("plain", "room", "outdoor")

Colour = tuple[int, int, int]


def luma(c: np.ndarray | tuple[int, int, int]) -> float:
    """Luminance of a BGR colour (0-255)."""
    return float(0.114 * c[0] + 0.587 * c[1] + 0.299 * c[2])


def colour_against(rng: np.random.Generator, bg_luma: float, min_diff: float = 70.0) -> Colour:
    """A random BGR colour pushed to differ in luminance from ``bg_luma`` by ``min_diff``."""
    c = rng.uniform(0, 255, size=3)
    diff = luma(c) - bg_luma
    if abs(diff) < min_diff:
        target = bg_luma + min_diff if bg_luma < 128 else bg_luma - min_diff
        c = np.clip(c + (target - luma(c)), 0, 255)
    return (int(c[0]), int(c[1]), int(c[2]))


def colour_apart(
    rng: np.random.Generator, bg_luma: float, other: Colour, min_dist: float = 100.0
) -> Colour:
    """A colour that stands out from the background (luminance) and from ``other`` (BGR
    distance): the best of a few random draws. Hands in front of the torso must stay visible."""
    best, best_dist = other, -1.0
    for _ in range(12):
        c = colour_against(rng, bg_luma, 60.0)
        dist = float(np.linalg.norm(np.subtract(c, other, dtype=np.float64)))
        if dist > best_dist:
            best, best_dist = c, dist
        if dist >= min_dist:
            break
    return best


def _pt(p) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def _jitter_colour(rng: np.random.Generator, base: np.ndarray, spread: float) -> Colour:
    c = np.clip(base + rng.normal(0, spread, size=3), 0, 255)
    return (int(c[0]), int(c[1]), int(c[2]))


def _blend(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per-pixel mix of two colours: (3,), (3,), (H, W) weights -> (H, W, 3) float."""
    return a[None, None, :] * (1 - w[..., None]) + b[None, None, :] * w[..., None]


def _smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    coarse = rng.uniform(0, 1, size=(cells, cells, 1)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)


# --------------------------------------------------------------------------- backgrounds


def _plain(rng: np.random.Generator, size: int) -> np.ndarray:
    base_luma = rng.uniform(25, 230)
    c1 = np.clip(rng.normal(base_luma, 35, size=3), 0, 255)
    c2 = np.clip(c1 + rng.normal(0, 45, size=3), 0, 255)
    if rng.random() < 0.5:  # linear gradient at a random angle
        a = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        w = xx * math.cos(a) + yy * math.sin(a)
        w = (w - w.min()) / max(1e-6, float(w.max() - w.min()))
    else:  # smooth noise texture, upsampled from a coarse random grid
        w = _smooth_field(rng, size, int(rng.integers(3, 17)))
    img = np.ascontiguousarray(_blend(c1, c2, w).astype(np.uint8))
    if rng.random() < 0.6:  # clutter: random shapes
        for _ in range(int(rng.integers(3, 14))):
            col = _jitter_colour(rng, c1, 60)
            kind = rng.integers(0, 3)
            p = rng.uniform(-0.1, 1.1, size=2) * size
            if kind == 0:
                q = p + rng.uniform(-0.3, 0.3, size=2) * size
                cv2.rectangle(img, _pt(p), _pt(q), col, -1)
            elif kind == 1:
                cv2.circle(img, _pt(p), int(rng.uniform(0.02, 0.15) * size), col, -1, cv2.LINE_AA)
            else:
                q = p + rng.uniform(-0.5, 0.5, size=2) * size
                th = int(rng.integers(1, max(2, size // 40) + 1))
                cv2.line(img, _pt(p), _pt(q), col, th, cv2.LINE_AA)
    return img


def _floor(rng: np.random.Generator, img: np.ndarray, horizon: int, base: np.ndarray) -> None:
    """Fills the rows below ``horizon`` with a floor: plain, boards or tiles in perspective."""
    size = img.shape[0]
    if horizon >= size:
        return
    floor = np.clip(base + rng.normal(0, 50, size=3), 0, 255)
    far = np.clip(floor * rng.uniform(0.6, 0.9), 0, 255)
    rows = np.linspace(0, 1, size - horizon, dtype=np.float32)[:, None] * np.ones((1, size), np.float32)
    img[horizon:] = _blend(far, floor, rows).astype(np.uint8)
    kind = rng.integers(0, 3)
    if kind == 0:
        return
    line = _jitter_colour(rng, floor * 0.6, 15)
    vanish = (rng.uniform(0.2, 0.8) * size, horizon - rng.uniform(0.3, 1.0) * size)
    for x in np.linspace(-size, 2 * size, int(rng.integers(6, 16))):  # lines to a vanishing point
        cv2.line(img, _pt((x, size)), _pt(vanish), line, 1, cv2.LINE_AA)
    if kind == 2:  # tiles: rows closer together towards the horizon
        depth = size - horizon
        for k in range(1, int(rng.integers(3, 7))):
            y = horizon + depth * (k / 6.0) ** 1.7
            cv2.line(img, (0, int(y)), (size, int(y)), line, 1, cv2.LINE_AA)


def _furniture(
    rng: np.random.Generator, img: np.ndarray, x: float, ground: float, scale: float, palette: np.ndarray
) -> None:
    """Draws one piece of furniture standing on ``ground`` (screen row) around column ``x``."""
    col = _jitter_colour(rng, palette, 55)
    dark = tuple(int(v * 0.6) for v in col)
    kind = rng.integers(0, 7)
    u = scale  # body height in pixels
    if kind == 0:  # chair, side view
        w, seat, back = 0.25 * u, 0.25 * u, 0.5 * u
        cv2.rectangle(img, _pt((x - w / 2, ground - seat)), _pt((x + w / 2, ground - seat + 0.04 * u)), col, -1)
        cv2.rectangle(img, _pt((x + w / 2 - 0.04 * u, ground - back)), _pt((x + w / 2, ground - seat)), col, -1)
        for lx in (x - w / 2, x + w / 2 - 0.03 * u):
            cv2.rectangle(img, _pt((lx, ground - seat)), _pt((lx + 0.03 * u, ground)), dark, -1)
    elif kind == 1:  # table
        w, h = rng.uniform(0.4, 0.8) * u, rng.uniform(0.35, 0.45) * u
        cv2.rectangle(img, _pt((x - w / 2, ground - h)), _pt((x + w / 2, ground - h + 0.05 * u)), col, -1)
        for lx in (x - w / 2 + 0.02 * u, x + w / 2 - 0.06 * u):
            cv2.rectangle(img, _pt((lx, ground - h)), _pt((lx + 0.04 * u, ground)), dark, -1)
    elif kind == 2:  # shelf with books
        w, h = rng.uniform(0.3, 0.6) * u, rng.uniform(0.6, 1.1) * u
        cv2.rectangle(img, _pt((x - w / 2, ground - h)), _pt((x + w / 2, ground)), col, -1)
        shelves = int(rng.integers(2, 5))
        for k in range(shelves):
            y0 = ground - h + (k + 0.15) * h / shelves
            y1 = ground - h + (k + 0.9) * h / shelves
            bx = x - w / 2 + 0.02 * u
            while bx < x + w / 2 - 0.05 * u:
                bw = rng.uniform(0.02, 0.05) * u
                book = _jitter_colour(rng, rng.uniform(0, 255, size=3), 10)
                cv2.rectangle(img, _pt((bx, y0 + rng.uniform(0, 0.3) * (y1 - y0))), _pt((bx + bw, y1)), book, -1)
                bx += bw + 0.005 * u
    elif kind == 3:  # door
        w, h = 0.45 * u, 1.1 * u
        cv2.rectangle(img, _pt((x - w / 2, ground - h)), _pt((x + w / 2, ground)), col, -1)
        cv2.rectangle(img, _pt((x - w / 2, ground - h)), _pt((x + w / 2, ground)), dark, max(1, int(0.015 * u)))
        cv2.circle(img, _pt((x + w / 3, ground - h / 2)), max(1, int(0.02 * u)), dark, -1)
    elif kind == 4:  # window on the wall
        w, h = rng.uniform(0.35, 0.6) * u, rng.uniform(0.35, 0.6) * u
        y = ground - rng.uniform(0.8, 1.3) * u
        sky = (int(rng.uniform(180, 255)), int(rng.uniform(150, 230)), int(rng.uniform(90, 200)))
        cv2.rectangle(img, _pt((x - w / 2, y)), _pt((x + w / 2, y + h)), sky, -1)
        th = max(1, int(0.02 * u))
        cv2.rectangle(img, _pt((x - w / 2, y)), _pt((x + w / 2, y + h)), col, th)
        cv2.line(img, _pt((x, y)), _pt((x, y + h)), col, th)
        cv2.line(img, _pt((x - w / 2, y + h / 2)), _pt((x + w / 2, y + h / 2)), col, th)
    elif kind == 5:  # plant in a pot
        pot = 0.12 * u
        cv2.fillConvexPoly(img, np.array([_pt((x - pot, ground - pot)), _pt((x + pot, ground - pot)),
                                          _pt((x + 0.7 * pot, ground)), _pt((x - 0.7 * pot, ground))], np.int32), dark)
        leaf = (int(rng.uniform(20, 90)), int(rng.uniform(100, 200)), int(rng.uniform(20, 90)))
        for _ in range(int(rng.integers(4, 9))):
            c = (x + rng.uniform(-1.5, 1.5) * pot, ground - pot - rng.uniform(0.3, 3.0) * pot)
            cv2.circle(img, _pt(c), max(1, int(rng.uniform(0.4, 0.9) * pot)), leaf, -1, cv2.LINE_AA)
    else:  # floor lamp
        h = rng.uniform(0.8, 1.2) * u
        cv2.line(img, _pt((x, ground)), _pt((x, ground - h)), dark, max(1, int(0.02 * u)), cv2.LINE_AA)
        shade = np.array([_pt((x - 0.1 * u, ground - h)), _pt((x + 0.1 * u, ground - h)),
                          _pt((x + 0.06 * u, ground - h - 0.12 * u)), _pt((x - 0.06 * u, ground - h - 0.12 * u))], np.int32)
        cv2.fillConvexPoly(img, shade, col, cv2.LINE_AA)


def _room(rng: np.random.Generator, size: int, ground: float, scale: float) -> np.ndarray:
    wall = np.clip(rng.normal(rng.uniform(60, 220), 30, size=3), 0, 255)
    pattern = rng.integers(0, 3)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = wall.astype(np.uint8)
    if pattern == 1:  # stripes
        period = int(rng.integers(4, 16))
        other = _jitter_colour(rng, wall, 25)
        for x in range(0, size, 2 * period):
            img[:, x : x + period] = other
    elif pattern == 2:  # mottled paper
        w = _smooth_field(rng, size, int(rng.integers(8, 24)))
        img[:] = _blend(wall, np.clip(wall * rng.uniform(0.7, 1.3), 0, 255), w).astype(np.uint8)
    horizon = int(ground - rng.uniform(0.05, 0.35) * scale)
    for _ in range(int(rng.integers(1, 5))):  # wall items behind the floor items
        _furniture(rng, img, rng.uniform(-0.1, 1.1) * size, horizon, scale * rng.uniform(0.8, 1.1), wall)
    _floor(rng, img, max(0, horizon), wall)
    for _ in range(int(rng.integers(0, 3))):
        _furniture(rng, img, rng.uniform(-0.1, 1.1) * size, horizon + rng.uniform(0, 0.3) * (ground - horizon),
                   scale * rng.uniform(0.85, 1.0), wall)
    return img


def _outdoor(rng: np.random.Generator, size: int, ground: float, scale: float) -> np.ndarray:
    top = np.array([rng.uniform(150, 255), rng.uniform(100, 220), rng.uniform(40, 180)])  # BGR sky
    bottom = np.clip(top + rng.normal(30, 30, size=3), 0, 255)
    if rng.random() < 0.25:  # dusk
        top, bottom = top * 0.4, np.array([rng.uniform(40, 120), rng.uniform(80, 160), rng.uniform(150, 255)])
    rows = np.linspace(0, 1, size, dtype=np.float32)[:, None] * np.ones((1, size), np.float32)
    img = np.ascontiguousarray(_blend(top, bottom, rows).astype(np.uint8))
    for _ in range(int(rng.integers(0, 4))):  # clouds
        c = rng.uniform(0, 1, size=2) * np.array([size, 0.4 * size])
        for _ in range(4):
            cv2.circle(img, _pt(c + rng.normal(0, 0.04 * size, 2)), int(rng.uniform(0.03, 0.08) * size),
                       (245, 245, 245), -1, cv2.LINE_AA)
    horizon = int(ground - rng.uniform(0.05, 0.4) * scale)
    if rng.random() < 0.5:  # grass
        ground_col = np.array([rng.uniform(20, 80), rng.uniform(100, 180), rng.uniform(40, 110)])
    else:  # pavement or sand
        ground_col = np.full(3, rng.uniform(80, 190)) + rng.normal(0, 15, size=3)
    if horizon < size:
        w = _smooth_field(rng, size, int(rng.integers(6, 20)))[horizon:]
        img[horizon:] = _blend(ground_col * 0.8, np.clip(ground_col * 1.1, 0, 255), w).astype(np.uint8)
    for _ in range(int(rng.integers(0, 5))):
        x, kind = rng.uniform(-0.1, 1.1) * size, rng.integers(0, 3)
        base = horizon + rng.uniform(0, 0.1) * scale
        h = rng.uniform(0.6, 1.6) * scale
        if kind == 0:  # tree
            trunk = (int(rng.uniform(20, 60)), int(rng.uniform(40, 80)), int(rng.uniform(60, 110)))
            cv2.rectangle(img, _pt((x - 0.03 * scale, base - 0.5 * h)), _pt((x + 0.03 * scale, base)), trunk, -1)
            leaf = (int(rng.uniform(10, 70)), int(rng.uniform(80, 170)), int(rng.uniform(10, 80)))
            cv2.circle(img, _pt((x, base - 0.65 * h)), int(0.2 * h), leaf, -1, cv2.LINE_AA)
        elif kind == 1:  # pole or street lamp
            grey = int(rng.uniform(30, 120))
            cv2.line(img, _pt((x, base)), _pt((x, base - h)), (grey,) * 3, max(1, int(0.02 * scale)), cv2.LINE_AA)
        else:  # fence segment
            col = _jitter_colour(rng, np.array([90.0, 120.0, 150.0]), 40)
            w = rng.uniform(0.3, 0.9) * scale
            for k in range(6):
                px = x + k * w / 5
                cv2.line(img, _pt((px, base)), _pt((px, base - 0.35 * scale)), col, max(1, int(0.015 * scale)))
            cv2.line(img, _pt((x, base - 0.28 * scale)), _pt((x + w, base - 0.28 * scale)), col, max(1, int(0.015 * scale)))
    return img


def background(rng: np.random.Generator, size: int, kind: str, ground: float, scale: float) -> np.ndarray:
    """A static background of ``kind`` (see :data:`BACKGROUNDS`).

    Args:
        size: Frame side in pixels.
        ground: Screen row of the figure's feet; floors and furniture are placed around it.
        scale: The figure's height in pixels; furniture is sized against it.

    Returns:
        (size, size, 3) uint8 BGR.
    """
    if kind == "plain":
        img = _plain(rng, size)
        if rng.random() < 0.5:  # a floor band below a horizon line
            horizon = int(rng.uniform(0.55, 0.85) * size)
            floor = np.clip(img[0, 0].astype(float) + rng.normal(0, 40, size=3), 0, 255)
            img[horizon:] = (0.5 * img[horizon:] + 0.5 * floor).astype(np.uint8)
    elif kind == "room":
        img = _room(rng, size, ground, scale)
    elif kind == "outdoor":
        img = _outdoor(rng, size, ground, scale)
    else:
        raise ValueError(f"unknown background {kind!r}; expected one of {BACKGROUNDS}")
    if rng.random() < 0.4:  # fine-grained static texture
        img = np.clip(img + rng.normal(0, rng.uniform(3, 12), size=img.shape), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


# --------------------------------------------------------------------------- occluders


@dataclass(frozen=True)
class Occluder:
    """A static object in front of the figure: a filled polygon in screen pixels."""

    polygon: np.ndarray  # (N, 2) int32
    colour: Colour

    def draw(self, img: np.ndarray) -> None:
        cv2.fillPoly(img, [self.polygon], self.colour, cv2.LINE_AA)


def occluder(
    rng: np.random.Generator, size: int, figure_x: float, ground: float, scale: float
) -> Occluder:
    """An object that hides part of the figure: a low box or sofa back over the shins, a post
    or door frame over one side, or a plant; never more than about a third of the body."""
    col = _jitter_colour(rng, rng.uniform(30, 220, size=3), 20)
    kind = rng.integers(0, 3)
    if kind == 0:  # low furniture in front: covers the feet and shins
        top = ground - rng.uniform(0.1, 0.3) * scale
        x0 = figure_x + rng.uniform(-0.6, 0.0) * scale
        x1 = x0 + rng.uniform(0.3, 0.8) * scale
        pts = [(x0, top), (x1, top), (x1, size + 2), (x0, size + 2)]
    elif kind == 1:  # a vertical post beside the body's centre line, thinner than the torso
        x = figure_x + rng.choice([-1.0, 1.0]) * rng.uniform(0.06, 0.25) * scale
        w = rng.uniform(0.015, 0.04) * scale
        pts = [(x - w, -2), (x + w, -2), (x + w, size + 2), (x - w, size + 2)]
    else:  # a bush or plant at the feet
        c = np.array([figure_x + rng.uniform(-0.3, 0.3) * scale, ground])
        r = rng.uniform(0.12, 0.22) * scale
        a = np.linspace(0, 2 * math.pi, 14, endpoint=False)
        rad = r * rng.uniform(0.75, 1.2, size=a.size)
        pts = list(np.stack([c[0] + rad * np.cos(a), c[1] + 0.8 * rad * np.sin(a)], 1))
        col = (int(rng.uniform(10, 80)), int(rng.uniform(90, 190)), int(rng.uniform(10, 90)))
    return Occluder(np.round(np.array(pts, np.float64)).astype(np.int32), col)


# --------------------------------------------------------------------------- lighting


def lighting(rng: np.random.Generator, size: int, strength: float = 1.0) -> np.ndarray:
    """A static illumination field: per-pixel, per-channel gains.

    A colour cast, plus a vignette or a light falling off in one direction, scaled by
    ``strength`` (0 = none).

    Returns:
        (size, size, 3) float32 gains around 1.
    """
    cast = 1.0 + rng.uniform(-0.12, 0.12, size=3) * strength
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    if rng.random() < 0.5:  # vignette
        field = 1.0 - rng.uniform(0.0, 0.8) * strength * (xx**2 + yy**2)
    else:  # directional
        a = rng.uniform(0, 2 * math.pi)
        field = 1.0 + rng.uniform(0.0, 0.45) * strength * (xx * math.cos(a) + yy * math.sin(a))
    return (field[..., None] * cast[None, None, :]).astype(np.float32)
