"""Rendering styles of the synthetic figure: how a posed skeleton becomes pixels.

A style fixes how body parts are shaped and painted; the pose, camera and scene come from
elsewhere (:mod:`video_figure`, :mod:`video_scene`). Every part is a convex polygon in screen
pixels, drawn far to near with sub-pixel precision, so styles differ only in shapes, fills
and outlines:

============  ===========================================================================
style         look
============  ===========================================================================
stick         round limbs of one width, sleeves in the shirt colour, forearms and head in
              skin colour, no outlines (the original renderer)
outline       line art: every part filled with one paper colour and inked around its edge
silhouette    a shadow figure: every part in one colour, the far limbs a shade apart
blocky        a robot: box limbs, square head, flat colours, inked edges, big head and
              shoulders
filled        a cartoon person: tapered limbs with an inked edge, a patterned shirt, shoes
              and hair, longer legs and wider shoulders
============  ===========================================================================

A style also scales the body's proportions (:data:`PROPORTIONS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from data_prep.corpora.video_figure import Body, J
from data_prep.corpora.video_scene import Colour, colour_against, colour_apart, luma

STYLES = ("stick", "outline", "silhouette", "blocky", "filled")

#: Per-style multipliers on :class:`Body` proportions.
PROPORTIONS: dict[str, dict[str, float]] = {
    "stick": {},
    "outline": {"head_r": 1.1},
    "silhouette": {"shoulder_w": 1.05},
    "blocky": {"head_r": 1.35, "shoulder_w": 1.25, "hip_w": 1.2, "thigh": 0.92, "shin": 0.92, "torso": 1.05},
    "filled": {"head_r": 0.9, "thigh": 1.06, "shin": 1.06, "shoulder_w": 1.12, "torso": 0.95},
}

#: Per-style range of limb thickness, in body heights.
THICKNESS: dict[str, tuple[float, float]] = {
    "stick": (0.045, 0.07),
    "outline": (0.045, 0.075),
    "silhouette": (0.05, 0.08),
    "blocky": (0.055, 0.09),
    "filled": (0.05, 0.085),
}

# Widths (diameters, in units of the limb thickness) at the start and end of each segment.
_ROUND = {"upper_arm": (1.0, 1.0), "forearm": (1.0, 1.0), "thigh": (1.25, 1.25), "shin": (1.25, 1.25),
          "foot": (1.25, 1.25), "hand": 1.8}  # fmt: skip
_TAPERED = {"upper_arm": (1.15, 0.9), "forearm": (0.9, 0.7), "thigh": (1.6, 1.15), "shin": (1.15, 0.8),
            "foot": (0.85, 0.7), "hand": 1.1}  # fmt: skip
_BOXES = {"upper_arm": (1.0, 1.0), "forearm": (0.9, 0.9), "thigh": (1.35, 1.35), "shin": (1.2, 1.2),
          "foot": (1.0, 1.0), "hand": 1.2}  # fmt: skip
_WIDTHS = {"stick": _ROUND, "outline": _TAPERED, "silhouette": _TAPERED, "blocky": _BOXES, "filled": _TAPERED}

_SHIFT = 4  # sub-pixel drawing: coordinates in 1/16 pixel
_ONE = 1 << _SHIFT


def style_body(body: Body, style: str) -> Body:
    """``body`` with the style's proportions applied."""
    if style not in PROPORTIONS:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
    return replace(body, **{k: getattr(body, k) * v for k, v in PROPORTIONS[style].items()})


@dataclass(frozen=True)
class Look:
    """How one clip's figure is painted.

    Attributes:
        style: One of :data:`STYLES`.
        thickness: Limb thickness in body heights.
        colours: BGR colours by role: ``shirt``, ``trousers``, ``skin``, ``shoes``, ``hair``,
            ``ink`` (outlines) and ``paper`` (outline style's fill).
        texture: (S, S, 3) uint8 pattern that fills the shirt, or None for a flat shirt.
        far_shade: Brightness factor of the limbs on the far side of the body.
    """

    style: str
    thickness: float
    colours: dict[str, Colour]
    texture: np.ndarray | None = None
    far_shade: float = 0.72


def _texture(rng: np.random.Generator, size: int, a: Colour, b: Colour) -> np.ndarray:
    """Stripes (any angle) or checks in colours ``a`` and ``b``: (size, size, 3) uint8."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = rng.uniform(3.0, 9.0) * size / 112
    if rng.random() < 0.6:
        ang = rng.uniform(0, math.pi)
        mask = np.floor((xx * math.cos(ang) + yy * math.sin(ang)) / period) % 2 == 0
    else:
        mask = (np.floor(xx / period) + np.floor(yy / period)) % 2 == 0
    return np.where(mask[..., None], np.array(a, np.uint8), np.array(b, np.uint8))


def sample_look(rng: np.random.Generator, style: str, bg_luma: float, size: int) -> Look:
    """Draws a look for ``style`` whose colours stand out from a background of ``bg_luma``."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
    thickness = float(rng.uniform(*THICKNESS[style]))
    shirt = colour_against(rng, bg_luma)
    colours = {"shirt": shirt, "trousers": colour_against(rng, bg_luma), "skin": colour_apart(rng, bg_luma, shirt)}
    ink_dark = bg_luma > 90 or rng.random() < 0.5
    colours["ink"] = tuple(int(v) for v in rng.uniform(0, 50, 3)) if ink_dark else tuple(int(v) for v in rng.uniform(200, 255, 3))
    colours["shoes"] = tuple(int(v) for v in rng.uniform(10, 80, 3))
    colours["hair"] = tuple(int(v) for v in rng.choice([[20, 30, 40], [30, 60, 110], [40, 90, 160], [200, 200, 210]]))
    colours["paper"] = colour_against(rng, bg_luma, 40.0)
    texture, far = None, 0.72
    if style == "filled" and rng.random() < 0.75:
        texture = _texture(rng, size, shirt, colour_apart(rng, bg_luma, shirt, 80.0))
    if style == "silhouette":
        body = colour_against(rng, bg_luma, 90.0)
        colours.update(shirt=body, trousers=body, skin=body, shoes=body, hair=body)
        far = float(rng.uniform(0.7, 0.9)) if luma(body) > 60 else float(rng.uniform(1.3, 1.8))
    if style == "outline":
        far = 1.0
    return Look(style, thickness, colours, texture, far)


# --------------------------------------------------------------------------- geometry


def _circle(c: np.ndarray, rx: float, ry: float | None = None, n: int = 16) -> np.ndarray:
    a = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([c[0] + rx * np.cos(a), c[1] + (rx if ry is None else ry) * np.sin(a)], 1)


def _segment(a: np.ndarray, b: np.ndarray, wa: float, wb: float, boxy: bool) -> np.ndarray:
    """A limb from ``a`` to ``b`` with widths ``wa``/``wb`` (pixels): a rounded, possibly
    tapered capsule, or a box. Returns a convex (N, 2) float polygon."""
    if boxy:
        d = b - a
        n = np.array([-d[1], d[0]]) / max(1e-6, float(np.hypot(*d)))
        return np.array([a + n * wa / 2, b + n * wb / 2, b - n * wb / 2, a - n * wa / 2])
    pts = np.concatenate([_circle(a, wa / 2, n=12), _circle(b, wb / 2, n=12)])
    return cv2.convexHull(pts.astype(np.float32))[:, 0, :].astype(np.float64)


def _shade(c: Colour, f: float) -> Colour:
    return tuple(int(min(255, v * f)) for v in c)  # type: ignore[return-value]


@dataclass
class _Part:
    depth: float
    polygon: np.ndarray  # (N, 2) float pixels, convex
    fill: Colour
    textured: bool = False
    outline: bool = False


def _parts(xy: np.ndarray, depth: np.ndarray, look: Look, scale: float, body: Body) -> list[_Part]:
    """The figure's parts, sorted far to near."""
    th = max(1.5, look.thickness * scale)
    style = look.style
    widths = _WIDTHS[style]
    boxy = style == "blocky"
    inked = style in ("outline", "blocky", "filled")
    col = look.colours
    paper = style == "outline"
    parts: list[_Part] = []

    def paint(role: str, f: float) -> Colour:
        return _shade(col["paper"] if paper else col[role], f)

    for side in "lr":
        near = depth[J[f"hip_{side}"]] >= depth[J["pelvis"]]
        f = 1.0 if near else look.far_shade
        chain = (
            ("upper_arm", "shoulder", "elbow", "shirt"),
            ("forearm", "elbow", "wrist", "skin"),
            ("thigh", "hip", "knee", "trousers"),
            ("shin", "knee", "ankle", "trousers"),
            ("foot", "ankle", "toe", "shoes" if style in ("filled", "blocky") else "trousers"),
        )
        for name, ja, jb, role in chain:
            a, b = xy[J[f"{ja}_{side}"]], xy[J[f"{jb}_{side}"]]
            wa, wb = widths[name]
            d = (float(depth[J[f"{ja}_{side}"]]) + float(depth[J[f"{jb}_{side}"]])) / 2
            textured = look.texture is not None and role == "shirt"
            parts.append(_Part(d, _segment(a, b, wa * th, wb * th, boxy), paint(role, f), textured, inked))
        w = xy[J[f"wrist_{side}"]]
        r = widths["hand"] * th / 2
        hand = np.array([w + (-r, -r), w + (r, -r), w + (r, r), w + (-r, r)]) if boxy else _circle(w, r, n=10)
        parts.append(_Part(float(depth[J[f"wrist_{side}"]]) + 1e-3, hand, paint("skin", f), False, inked))
    # The torso goes first among equals, so arms level with it are drawn over it.
    corners = np.array([xy[J[n]] for n in ("shoulder_l", "shoulder_r", "hip_r", "hip_l")])
    spine = [xy[J["pelvis"]], xy[J["neck"]]]
    if boxy:
        torso = corners
    elif style == "stick":
        torso = np.concatenate([corners, *(_circle(p, 0.9 * th, n=10) for p in spine)])
    else:
        torso = np.concatenate([*(_circle(p, 0.55 * th, n=8) for p in corners), _circle(spine[1], 0.7 * th, n=8)])
    torso = cv2.convexHull(torso.astype(np.float32))[:, 0, :].astype(np.float64)
    torso_depth = float(depth[J["neck"]] + depth[J["pelvis"]]) / 2 - 1e-3
    parts.append(_Part(torso_depth, torso, paint("shirt", 1.0), look.texture is not None, inked))
    head = xy[J["head"]]
    r = body.head_r * scale
    if style == "filled":  # hair: a cap above the face, drawn just behind it
        parts.append(_Part(torso_depth + 1e-4, _circle(head + (0, -0.15 * r), 1.05 * r, 0.95 * r), col["hair"], False, True))
    if boxy:
        shape = np.array([head + (-r, -r), head + (r, -r), head + (r, r), head + (-r, r)])
    else:
        shape = _circle(head, r, r * (1.15 if style == "stick" else 1.05), n=20)
    parts.append(_Part(torso_depth + 2e-4, shape, paint("skin", 1.0), False, inked))
    parts.sort(key=lambda p: p.depth)
    return parts


def draw_figure(img: np.ndarray, xy: np.ndarray, depth: np.ndarray, look: Look, scale: float, body: Body) -> None:
    """Paints the figure into ``img`` (H, W, 3) uint8 BGR, in place.

    Args:
        xy: (J, 2) screen joints in pixels (joint order ``video_figure.JOINTS``).
        depth: (J,) larger = nearer the camera.
        look: The clip's :class:`Look`.
        scale: Pixels per body height.
        body: The (style-scaled) body, for the head size.
    """
    ink = look.colours["ink"]
    ink_px = max(1, int(round(img.shape[0] / 112)))
    for part in _parts(xy, depth, look, scale, body):
        poly = np.round(part.polygon * _ONE).astype(np.int32)
        if part.textured and look.texture is not None:
            mask = np.zeros(img.shape[:2], np.uint8)
            cv2.fillConvexPoly(mask, poly, 255, cv2.LINE_AA, _SHIFT)
            alpha = (mask.astype(np.float32) / 255.0)[..., None]
            img[:] = (img * (1 - alpha) + look.texture * alpha).astype(np.uint8)
        else:
            cv2.fillConvexPoly(img, poly, part.fill, cv2.LINE_AA, _SHIFT)
        if part.outline:
            cv2.polylines(img, [poly], True, ink, ink_px, cv2.LINE_AA, _SHIFT)
