"""An articulated stick-and-ellipse human figure, posed by forward kinematics.

The body lives in a 3-D body frame measured in body heights: x to the figure's side, y up,
z forward (the way it faces); the ground is ``y = 0``. Each limb segment has an absolute
direction given by two angles in degrees: ``pitch`` swings it forward from hanging straight
down (180 = straight up) and ``roll`` swings it out to its own side (negative = across the
body). Joint positions follow by chaining segment lengths from the pelvis; the feet are then
put on the ground (plus ``lift`` for a jump). An orthographic camera turned by ``yaw`` around
the vertical axis gives the 2-D points that the renderer draws.

The motions (walk, sit, raise, squat, jump, wave, clap) map normalised time ``t`` in [0, 1]
to a :class:`Pose`; their per-clip parameters (speed, phase, amplitude, ...) are drawn from
a seeded generator by :func:`sample_motion`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

#: Joint names, in the order of the arrays that :func:`forward_kinematics` returns.
JOINTS = (
    "pelvis", "neck", "head",
    "shoulder_l", "elbow_l", "wrist_l", "shoulder_r", "elbow_r", "wrist_r",
    "hip_l", "knee_l", "ankle_l", "toe_l", "hip_r", "knee_r", "ankle_r", "toe_r",
)  # fmt: skip
J = {name: i for i, name in enumerate(JOINTS)}

#: Segments a pose sets: name -> (pitch, roll) in degrees.
SEGMENTS = (
    "upper_arm_l", "forearm_l", "upper_arm_r", "forearm_r",
    "thigh_l", "shin_l", "thigh_r", "shin_r",
)  # fmt: skip

_SIDE = {"l": -1.0, "r": 1.0}


@dataclass(frozen=True)
class Body:
    """Segment lengths in units of standing height (about 1.0 in total)."""

    torso: float = 0.30
    neck: float = 0.035
    head_r: float = 0.065
    shoulder_w: float = 0.11  # half shoulder width
    hip_w: float = 0.06  # half hip width
    upper_arm: float = 0.17
    forearm: float = 0.16
    thigh: float = 0.245
    shin: float = 0.235
    foot: float = 0.07

    @staticmethod
    def sample(rng: np.random.Generator) -> Body:
        """A body with each proportion scaled by up to +-12 % (drawn from ``rng``)."""
        base = Body()
        names = [f for f in base.__dataclass_fields__]
        scales = rng.uniform(0.88, 1.12, size=len(names))
        return Body(**{n: getattr(base, n) * float(s) for n, s in zip(names, scales, strict=True)})


def _rest_segments() -> dict[str, tuple[float, float]]:
    return {
        "upper_arm_l": (4.0, 8.0), "forearm_l": (14.0, 6.0),
        "upper_arm_r": (4.0, 8.0), "forearm_r": (14.0, 6.0),
        "thigh_l": (0.0, 3.0), "shin_l": (0.0, 3.0),
        "thigh_r": (0.0, 3.0), "shin_r": (0.0, 3.0),
    }  # fmt: skip


@dataclass(frozen=True)
class Pose:
    """Joint angles (degrees) plus root motion, all in body units.

    Attributes:
        segments: ``name -> (pitch, roll)`` for every name in :data:`SEGMENTS`.
        lean: Torso pitch forward from vertical.
        lift: Height of the feet above the ground (jumping).
        advance: Distance walked forward along the body's z axis.
    """

    segments: dict[str, tuple[float, float]] = field(default_factory=_rest_segments)
    lean: float = 0.0
    lift: float = 0.0
    advance: float = 0.0


def _direction(pitch: float, roll: float, side: float) -> np.ndarray:
    """Unit vector of a segment: hanging down, swung forward by pitch, out by roll."""
    p, r = math.radians(pitch), math.radians(roll)
    return np.array([side * math.sin(r), -math.cos(r) * math.cos(p), math.cos(r) * math.sin(p)])


def forward_kinematics(pose: Pose, body: Body) -> np.ndarray:
    """Joint positions of a posed body.

    Returns:
        (J, 3) float array in body units, x/y/z as in the module docstring, feet on the
        ground (lowest foot point at ``y = pose.lift``), pelvis above ``x = 0``.
    """
    pts = np.zeros((len(JOINTS), 3))
    lean = math.radians(pose.lean)
    up = np.array([0.0, math.cos(lean), math.sin(lean)])
    pelvis = np.zeros(3)
    neck = pelvis + body.torso * up
    pts[J["pelvis"]] = pelvis
    pts[J["neck"]] = neck
    pts[J["head"]] = neck + (body.neck + body.head_r) * up
    seg = pose.segments
    for s, sx in _SIDE.items():
        shoulder = neck + np.array([sx * body.shoulder_w, -0.02, 0.0])
        elbow = shoulder + body.upper_arm * _direction(*seg[f"upper_arm_{s}"], sx)
        wrist = elbow + body.forearm * _direction(*seg[f"forearm_{s}"], sx)
        hip = pelvis + np.array([sx * body.hip_w, 0.0, 0.0])
        knee = hip + body.thigh * _direction(*seg[f"thigh_{s}"], sx)
        ankle = knee + body.shin * _direction(*seg[f"shin_{s}"], sx)
        toe = ankle + np.array([0.0, 0.0, body.foot])
        for name, p in (("shoulder", shoulder), ("elbow", elbow), ("wrist", wrist),
                        ("hip", hip), ("knee", knee), ("ankle", ankle), ("toe", toe)):  # fmt: skip
            pts[J[f"{name}_{s}"]] = p
    feet = [J["ankle_l"], J["toe_l"], J["ankle_r"], J["toe_r"]]
    pts[:, 1] += pose.lift - pts[feet, 1].min()
    pts[:, 2] += pose.advance
    return pts


def project(
    points: np.ndarray, yaw: float, scale: float, origin: tuple[float, float], elevation: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Orthographic view of body-frame points from a camera turned by ``yaw`` degrees and
    raised by ``elevation`` degrees (looking down at the figure).

    At ``yaw = 0`` the figure faces the camera; at ``+90`` it faces screen right. From above,
    points nearer the camera appear lower on the screen and heights are foreshortened.

    Args:
        points: (J, 3) body-frame points.
        yaw: Rotation of the body about the vertical axis, degrees.
        scale: Pixels per body unit.
        origin: Screen (x, y) of the body-frame origin (pelvis x/z, ground y).
        elevation: Camera angle above the horizontal, degrees.

    Returns:
        xy: (J, 2) screen coordinates (y down). depth: (J,) larger = nearer the camera.
    """
    a, e = math.radians(yaw), math.radians(elevation)
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    sx = origin[0] + scale * (x * math.cos(a) + z * math.sin(a))
    depth = z * math.cos(a) - x * math.sin(a)
    sy = origin[1] - scale * (y * math.cos(e) - depth * math.sin(e))
    return np.stack([sx, sy], axis=1), depth


# --------------------------------------------------------------------------- motions


def _smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


def _mix(a: tuple[float, float], b: tuple[float, float], u: float) -> tuple[float, float]:
    return (a[0] + (b[0] - a[0]) * u, a[1] + (b[1] - a[1]) * u)


@dataclass(frozen=True)
class Motion:
    """Per-clip parameters of one base motion; :meth:`pose` evaluates it at time t."""

    kind: str  # walk | sit | raise | squat | jump | wave | clap
    t0: float = 0.0  # one-shot motions happen within [t0, t1] of the clip
    t1: float = 1.0
    cycles: float = 2.0  # walk/wave/clap/jump/squat repetitions
    phase: float = 0.0  # radians, cyclic motions
    amp: float = 1.0  # amplitude scale
    side: str = "r"  # waving arm
    style: int = 0  # raise: 0 = sideways, 1 = forwards
    travel: float = 0.0  # walk: distance in body units over the clip
    height: float = 0.2  # jump height, body units
    sway_phase: float = 0.0  # idle sway (integer cycles, so t=0 and t=1 agree)
    sway_amp: float = 3.0

    def progress(self, t: float) -> float:
        """Eased progress in [0, 1] of a one-shot motion at clip time t."""
        return _smoothstep((t - self.t0) / max(1e-6, self.t1 - self.t0))

    def pose(self, t: float) -> Pose:
        """The pose at normalised clip time ``t`` in [0, 1]."""
        seg = _rest_segments()
        sway = self.sway_amp * math.sin(2.0 * math.pi * t + self.sway_phase)
        for s in "lr":
            p, r = seg[f"upper_arm_{s}"]
            seg[f"upper_arm_{s}"] = (p + sway, r)
            p, r = seg[f"forearm_{s}"]
            seg[f"forearm_{s}"] = (p + 1.5 * sway, r)
        pose = Pose(segments=seg, lean=0.5 * sway)
        return getattr(self, f"_{self.kind}")(t, pose)

    def _walk(self, t: float, pose: Pose) -> Pose:
        seg = dict(pose.segments)
        th = 2.0 * math.pi * self.cycles * t + self.phase
        a_leg, a_arm = 26.0 * self.amp, 22.0 * self.amp
        for s, sign in (("l", 1.0), ("r", -1.0)):
            hip = a_leg * sign * math.sin(th)
            knee = 45.0 * self.amp * max(0.0, sign * math.cos(th))  # flexed while swinging
            seg[f"thigh_{s}"] = (hip, 2.0)
            seg[f"shin_{s}"] = (hip - knee, 2.0)
            arm = -a_arm * sign * math.sin(th)
            seg[f"upper_arm_{s}"] = (arm, 6.0)
            seg[f"forearm_{s}"] = (arm + 18.0, 5.0)
        return replace(pose, segments=seg, lean=5.0, advance=self.travel * t)

    def _sit(self, t: float, pose: Pose) -> Pose:
        u = self.progress(t)
        bump = math.sin(math.pi * u)
        seg = dict(pose.segments)
        for s in "lr":
            seg[f"thigh_{s}"] = (88.0 * u, 6.0 * u + 3.0)
            seg[f"shin_{s}"] = (-12.0 * bump, 3.0)
            arm = _mix(seg[f"upper_arm_{s}"], (25.0, 12.0), u)
            seg[f"upper_arm_{s}"] = (arm[0] + 35.0 * bump, arm[1])
            seg[f"forearm_{s}"] = _mix(seg[f"forearm_{s}"], (75.0, 8.0), u)
        return replace(pose, segments=seg, lean=38.0 * bump + 8.0 * u)

    def _raise(self, t: float, pose: Pose) -> Pose:
        u = self.progress(t)
        seg = dict(pose.segments)
        top = 150.0 + 18.0 * self.amp
        for s in "lr":
            if self.style == 0:  # out to the sides and up
                seg[f"upper_arm_{s}"] = _mix(seg[f"upper_arm_{s}"], (0.0, top), u)
                seg[f"forearm_{s}"] = _mix(seg[f"forearm_{s}"], (0.0, top + 5.0), u)
            else:  # forwards and up
                seg[f"upper_arm_{s}"] = _mix(seg[f"upper_arm_{s}"], (top, 10.0), u)
                seg[f"forearm_{s}"] = _mix(seg[f"forearm_{s}"], (top + 5.0, 8.0), u)
        return replace(pose, segments=seg)

    def _squat(self, t: float, pose: Pose) -> Pose:
        u = (t - self.t0) / max(1e-6, self.t1 - self.t0)
        u = min(1.0, max(0.0, u))
        depth = self.amp * math.sin(math.pi * round(self.cycles) * u) ** 2
        seg = dict(pose.segments)
        for s in "lr":
            seg[f"thigh_{s}"] = (105.0 * depth, 3.0 + 8.0 * depth)
            seg[f"shin_{s}"] = (-38.0 * depth, 3.0)
            seg[f"upper_arm_{s}"] = _mix(seg[f"upper_arm_{s}"], (85.0, 10.0), depth)
            seg[f"forearm_{s}"] = _mix(seg[f"forearm_{s}"], (90.0, 6.0), depth)
        return replace(pose, segments=seg, lean=pose.lean + 35.0 * depth)

    def _jump(self, t: float, pose: Pose) -> Pose:
        u = (t - self.t0) / max(1e-6, self.t1 - self.t0)
        if not 0.0 <= u < 1.0:
            return pose
        n = max(1, round(self.cycles))
        v = (u * n) % 1.0  # position within one jump
        crouch = math.sin(math.pi * v / 0.35) ** 2 if v < 0.35 else 0.0
        if v >= 0.7:
            crouch = math.sin(math.pi * (v - 0.7) / 0.3) ** 2
        flight = max(0.0, 1.0 - ((v - 0.525) / 0.175) ** 2) if 0.35 <= v < 0.7 else 0.0
        seg = dict(pose.segments)
        for s in "lr":
            seg[f"thigh_{s}"] = (65.0 * crouch + 18.0 * flight, 4.0)
            seg[f"shin_{s}"] = (-40.0 * crouch - 12.0 * flight, 3.0)
            arm = -45.0 * crouch + 150.0 * flight
            seg[f"upper_arm_{s}"] = (arm + seg[f"upper_arm_{s}"][0], 12.0)
            seg[f"forearm_{s}"] = (arm + 15.0, 10.0)
        return replace(pose, segments=seg, lean=28.0 * crouch, lift=self.height * flight)

    def _wave(self, t: float, pose: Pose) -> Pose:
        seg = dict(pose.segments)
        s = self.side
        swing = 32.0 * self.amp * math.sin(2.0 * math.pi * self.cycles * t + self.phase)
        seg[f"upper_arm_{s}"] = (10.0, 145.0)
        seg[f"forearm_{s}"] = (5.0, 180.0 + swing)
        return replace(pose, segments=seg)

    def _clap(self, t: float, pose: Pose) -> Pose:
        seg = dict(pose.segments)
        body = Body()
        closed = -math.degrees(math.asin(body.shoulder_w / (body.upper_arm + body.forearm))) - 4.0
        opened = 35.0 + 15.0 * self.amp
        gap = 0.5 + 0.5 * math.cos(2.0 * math.pi * self.cycles * t + self.phase)
        roll = closed + (opened - closed) * gap
        for s in "lr":
            seg[f"upper_arm_{s}"] = (70.0, roll)
            seg[f"forearm_{s}"] = (85.0, roll)
        return replace(pose, segments=seg)


#: Label -> (base motion, reversed). Reversed labels are the base motion played backwards.
LABEL_MOTION: dict[str, tuple[str, bool]] = {
    "walk_left": ("walk", False),
    "walk_right": ("walk", False),
    "sit_down": ("sit", False),
    "stand_up": ("sit", True),
    "raise_arms": ("raise", False),
    "lower_arms": ("raise", True),
    "jump": ("jump", False),
    "squat": ("squat", False),
    "wave": ("wave", False),
    "clap": ("clap", False),
}


def sample_motion(label: str, rng: np.random.Generator) -> tuple[Motion, float]:
    """Draws the motion parameters and the body yaw (degrees) for a clip of ``label``.

    The base motion of a reversed label is drawn exactly as for its forward twin, so the
    same generator state gives the same motion for ``sit_down`` and ``stand_up``.
    """
    kind, _ = LABEL_MOTION[label]
    dur = rng.uniform(0.55, 0.95)
    t0 = rng.uniform(0.0, 1.0 - dur)
    common = dict(
        t0=t0,
        t1=t0 + dur,
        phase=rng.uniform(0.0, 2.0 * math.pi),
        amp=rng.uniform(0.8, 1.15),
        sway_phase=rng.uniform(0.0, 2.0 * math.pi),
        sway_amp=rng.uniform(0.0, 4.0),
    )
    yaw = rng.uniform(-55.0, 55.0)
    if kind == "walk":
        direction = -1.0 if label == "walk_left" else 1.0
        yaw = direction * rng.uniform(60.0, 90.0)
        m = Motion("walk", cycles=rng.uniform(1.2, 2.8), **common)
    elif kind == "sit":
        m = Motion("sit", **common)
    elif kind == "raise":
        m = Motion("raise", style=int(rng.integers(0, 2)), **common)
    elif kind == "squat":
        m = Motion("squat", cycles=float(rng.integers(1, 3)), **common)
    elif kind == "jump":
        m = Motion(
            "jump", cycles=float(rng.integers(1, 3)), height=rng.uniform(0.12, 0.25), **common
        )
    elif kind == "wave":
        m = Motion("wave", cycles=rng.uniform(2.0, 4.5), side=str(rng.choice(["l", "r"])), **common)
    elif kind == "clap":
        m = Motion("clap", cycles=rng.uniform(2.0, 4.5), **common)
    else:  # pragma: no cover - LABEL_MOTION and this switch are kept in step
        raise ValueError(f"unknown motion {kind!r}")
    return m, float(yaw)
