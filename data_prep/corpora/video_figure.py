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


#: Each base motion's ways of being performed (the first is the original one). They differ
#: in which limbs move and how: one or both arms, an arm swing or none, height, rhythm.
VARIANTS: dict[str, tuple[str, ...]] = {
    "walk": ("stride", "march", "shuffle", "hands_behind"),
    "sit": ("reach", "crossed", "arms_out", "armrest"),
    "raise": ("sides", "forward", "bent", "one_by_one"),
    "jump": ("swing", "still", "jack", "tuck"),
    "squat": ("arms_forward", "hips", "behind_head", "crossed"),
    "wave": ("overhead", "shoulder", "both", "big"),
    "clap": ("chest", "overhead", "low", "bursts"),
}

#: Arms folded across the chest: (upper arm, forearm) as (pitch, roll).
_CROSSED = ((30.0, 15.0), (95.0, -62.0))


def _arms(seg: dict, upper: tuple[float, float], fore: tuple[float, float], u: float = 1.0, sides: str = "lr") -> None:
    """Moves the arms of ``sides`` a fraction ``u`` of the way from their pose to the given one."""
    for s in sides:
        seg[f"upper_arm_{s}"] = _mix(seg[f"upper_arm_{s}"], upper, u)
        seg[f"forearm_{s}"] = _mix(seg[f"forearm_{s}"], fore, u)


@dataclass(frozen=True)
class Motion:
    """Per-clip parameters of one base motion; :meth:`pose` evaluates it at time t."""

    kind: str  # walk | sit | raise | squat | jump | wave | clap
    variant: str = ""  # one of VARIANTS[kind]; "" = the first
    t0: float = 0.0  # one-shot motions happen within [t0, t1] of the clip
    t1: float = 1.0
    cycles: float = 2.0  # walk/wave/clap/jump/squat repetitions
    phase: float = 0.0  # radians, cyclic motions
    amp: float = 1.0  # amplitude scale
    side: str = "r"  # the waving arm; the arm that rises first (one_by_one)
    travel: float = 0.0  # walk: distance in body units over the clip
    height: float = 0.2  # jump height, body units
    sway_phase: float = 0.0  # idle sway (integer cycles, so t=0 and t=1 agree)
    sway_amp: float = 3.0
    hold: float = 0.0  # a pause: the motion stands still for this fraction of the clip ...
    hold_at: float = 0.5  # ... starting at this clip time
    free: tuple[float, ...] = ()  # kind "free": (low, high, cycles, phase) per angle, see FREE_ANGLES

    @property
    def way(self) -> str:
        """The variant's name (the first of the kind's when unset)."""
        return self.variant or VARIANTS[self.kind][0]

    def progress(self, t: float) -> float:
        """Eased progress in [0, 1] of a one-shot motion at clip time t."""
        return _smoothstep((t - self.t0) / max(1e-6, self.t1 - self.t0))

    def _motion_time(self, t: float) -> float:
        """Clip time -> motion time: the motion stands still during the pause and runs a little
        faster around it, so it still ends where it would have without the pause."""
        if self.hold <= 0.0:
            return t
        return (t - min(max(t - self.hold_at, 0.0), self.hold)) / (1.0 - self.hold)

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
        return getattr(self, f"_{self.kind}")(self._motion_time(t), pose)

    def _walk(self, t: float, pose: Pose) -> Pose:
        seg = dict(pose.segments)
        way = self.way
        th = 2.0 * math.pi * self.cycles * t + self.phase
        leg = 0.45 if way == "shuffle" else 1.0
        a_leg, a_arm = 26.0 * self.amp * leg, 22.0 * self.amp
        for s, sign in (("l", 1.0), ("r", -1.0)):
            swing = sign * math.sin(th)
            if way == "march":  # knees lifted high in turn, bent arms pumping
                lift = 62.0 * self.amp * max(0.0, swing)
                seg[f"thigh_{s}"] = (lift - 8.0 * max(0.0, -swing), 2.0)
                seg[f"shin_{s}"] = (lift * 0.25 - 10.0 * max(0.0, -swing), 2.0)
            else:
                hip = a_leg * swing
                knee = 45.0 * self.amp * leg * max(0.0, sign * math.cos(th))  # flexed while swinging
                seg[f"thigh_{s}"] = (hip, 2.0)
                seg[f"shin_{s}"] = (hip - knee, 2.0)
            arm = -a_arm * swing
            if way == "stride":
                seg[f"upper_arm_{s}"], seg[f"forearm_{s}"] = (arm, 6.0), (arm + 18.0, 5.0)
            elif way == "march":
                seg[f"upper_arm_{s}"], seg[f"forearm_{s}"] = (1.4 * arm, 8.0), (1.4 * arm + 85.0, 4.0)
            elif way == "shuffle":  # arms hang
                seg[f"upper_arm_{s}"], seg[f"forearm_{s}"] = (0.15 * arm + 2.0, 7.0), (0.15 * arm + 8.0, 6.0)
            else:  # hands_behind: hands clasped behind the back
                seg[f"upper_arm_{s}"], seg[f"forearm_{s}"] = (-28.0, 4.0), (-70.0, -38.0)
        lean = 2.0 if way == "march" else (9.0 if way == "shuffle" else 5.0)
        return replace(pose, segments=seg, lean=lean, advance=self.travel * t)

    def _sit(self, t: float, pose: Pose) -> Pose:
        u = self.progress(t)
        bump = math.sin(math.pi * u)
        seg = dict(pose.segments)
        way = self.way
        for s in "lr":
            seg[f"thigh_{s}"] = (88.0 * u, 6.0 * u + 3.0)
            seg[f"shin_{s}"] = (-12.0 * bump, 3.0)
        lean = 38.0 * bump + 8.0 * u
        if way == "reach":  # hands to the knees, arms swinging forwards on the way
            for s in "lr":
                arm = _mix(seg[f"upper_arm_{s}"], (25.0, 12.0), u)
                seg[f"upper_arm_{s}"] = (arm[0] + 35.0 * bump, arm[1])
                seg[f"forearm_{s}"] = _mix(seg[f"forearm_{s}"], (75.0, 8.0), u)
        elif way == "crossed":  # arms folded the whole time: the legs alone do it
            _arms(seg, *_CROSSED)
            lean = 24.0 * bump + 6.0 * u
        elif way == "arms_out":  # arms held out in front for balance, deeper lean
            _arms(seg, (80.0, 8.0), (86.0, 6.0), bump)
            lean = 46.0 * bump + 6.0 * u
        else:  # armrest: hands reach down and back for the seat
            _arms(seg, (-24.0, 20.0), (6.0, 16.0), min(1.0, 1.6 * u))
            lean = 30.0 * bump + 5.0 * u
        return replace(pose, segments=seg, lean=lean)

    def _raise(self, t: float, pose: Pose) -> Pose:
        seg = dict(pose.segments)
        top = 150.0 + 18.0 * self.amp
        way = self.way
        if way == "one_by_one":  # one arm, then the other
            raw = (t - self.t0) / max(1e-6, self.t1 - self.t0)
            first, second = (self.side, "l" if self.side == "r" else "r")
            _arms(seg, (0.0, top), (0.0, top + 5.0), _smoothstep(raw / 0.55), first)
            _arms(seg, (0.0, top), (0.0, top + 5.0), _smoothstep((raw - 0.45) / 0.55), second)
            return replace(pose, segments=seg)
        u = self.progress(t)
        if way == "sides":  # out to the sides and up
            _arms(seg, (0.0, top), (0.0, top + 5.0), u)
        elif way == "forward":  # forwards and up
            _arms(seg, (top, 10.0), (top + 5.0, 8.0), u)
        else:  # bent: elbows at shoulder height, forearms up
            _arms(seg, (0.0, 96.0 + 8.0 * self.amp), (4.0, 174.0), u)
        return replace(pose, segments=seg)

    def _squat(self, t: float, pose: Pose) -> Pose:
        u = (t - self.t0) / max(1e-6, self.t1 - self.t0)
        u = min(1.0, max(0.0, u))
        depth = self.amp * math.sin(math.pi * round(self.cycles) * u) ** 2
        seg = dict(pose.segments)
        for s in "lr":
            seg[f"thigh_{s}"] = (105.0 * depth, 3.0 + 8.0 * depth)
            seg[f"shin_{s}"] = (-38.0 * depth, 3.0)
        way = self.way
        if way == "arms_forward":
            _arms(seg, (85.0, 10.0), (90.0, 6.0), depth)
        elif way == "hips":  # hands on the hips, elbows out
            _arms(seg, (-12.0, 48.0), (8.0, -58.0))
        elif way == "behind_head":  # hands behind the head, elbows out
            _arms(seg, (6.0, 150.0), (-20.0, -112.0))
        else:  # crossed
            _arms(seg, *_CROSSED)
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
        way = self.way
        tuck = 80.0 * flight if way == "tuck" else 0.0
        spread = 22.0 * flight if way == "jack" else 0.0
        for s in "lr":
            seg[f"thigh_{s}"] = (65.0 * crouch + 18.0 * flight + tuck, 4.0 + spread)
            seg[f"shin_{s}"] = (-40.0 * crouch - 12.0 * flight - 0.9 * tuck, 3.0 + spread)
            if way == "swing":  # arms swing back in the crouch and up in flight
                arm = -45.0 * crouch + 150.0 * flight
                seg[f"upper_arm_{s}"] = (arm + seg[f"upper_arm_{s}"][0], 12.0)
                seg[f"forearm_{s}"] = (arm + 15.0, 10.0)
            elif way == "still":  # arms stay bent at the sides
                seg[f"upper_arm_{s}"] = (8.0 + 10.0 * crouch, 10.0)
                seg[f"forearm_{s}"] = (45.0 + 15.0 * crouch, 8.0)
            elif way == "jack":  # arms out to the sides and up in flight, legs apart
                seg[f"upper_arm_{s}"] = (4.0, 10.0 + 140.0 * flight)
                seg[f"forearm_{s}"] = (6.0, 8.0 + 150.0 * flight)
            else:  # tuck: knees pulled up, arms reaching forwards
                seg[f"upper_arm_{s}"] = (20.0 + 55.0 * flight - 25.0 * crouch, 10.0)
                seg[f"forearm_{s}"] = (30.0 + 60.0 * flight - 20.0 * crouch, 8.0)
        return replace(pose, segments=seg, lean=28.0 * crouch + 0.15 * tuck, lift=self.height * flight)

    def _wave(self, t: float, pose: Pose) -> Pose:
        seg = dict(pose.segments)
        way = self.way
        swing = 32.0 * self.amp * math.sin(2.0 * math.pi * self.cycles * t + self.phase)
        sides = "lr" if way == "both" else self.side
        for s in sides:
            if way in ("overhead", "both"):  # hand above the head, the forearm swings
                seg[f"upper_arm_{s}"], seg[f"forearm_{s}"] = (10.0, 145.0), (5.0, 180.0 + swing)
            elif way == "shoulder":  # elbow at shoulder height, hand beside the head
                seg[f"upper_arm_{s}"], seg[f"forearm_{s}"] = (12.0, 88.0), (8.0, 178.0 + swing)
            else:  # big: the straight arm sweeps from the shoulder
                seg[f"upper_arm_{s}"], seg[f"forearm_{s}"] = (12.0, 150.0 + 1.2 * swing), (12.0, 154.0 + 1.3 * swing)
        return replace(pose, segments=seg)

    def _free(self, t: float, pose: Pose) -> Pose:
        v = {}
        for i, (name, _, _) in enumerate(FREE_ANGLES):
            lo, hi, cycles, phase = self.free[4 * i : 4 * i + 4]
            v[name] = lo + (hi - lo) * (0.5 + 0.5 * math.sin(2.0 * math.pi * cycles * t + phase))
        seg = dict(pose.segments)
        for s in "lr":
            upper = (v[f"upper_arm_{s}.pitch"], v[f"upper_arm_{s}.roll"])
            thigh = (v[f"thigh_{s}.pitch"], v[f"thigh_{s}.roll"])
            seg[f"upper_arm_{s}"] = upper
            seg[f"forearm_{s}"] = (upper[0] + v[f"elbow_{s}.pitch"], upper[1] + v[f"elbow_{s}.roll"])
            seg[f"thigh_{s}"] = thigh
            seg[f"shin_{s}"] = (thigh[0] - v[f"knee_{s}.pitch"], thigh[1] + v[f"knee_{s}.roll"])
        return replace(pose, segments=seg, lean=v["lean"], lift=v["lift"])

    def _clap(self, t: float, pose: Pose) -> Pose:
        seg = dict(pose.segments)
        body = Body()
        closed = -math.degrees(math.asin(body.shoulder_w / (body.upper_arm + body.forearm))) - 4.0
        opened = 35.0 + 15.0 * self.amp
        way = self.way
        beats = self.cycles * t
        if way == "bursts":  # two quick claps, then a rest
            beats = 1.5 * beats
            beats = 2.0 * math.floor(beats / 3.0) + min(beats % 3.0, 2.0)
        gap = 0.5 + 0.5 * math.cos(2.0 * math.pi * beats + self.phase)
        roll = closed + (opened - closed) * gap
        pitch = {"overhead": (168.0, 176.0), "low": (22.0, 58.0)}.get(way, (70.0, 85.0))
        for s in "lr":
            seg[f"upper_arm_{s}"] = (pitch[0], roll)
            seg[f"forearm_{s}"] = (pitch[1], roll)
        return replace(pose, segments=seg)


#: The angles of a "free" motion, in order, with their (low, high) range in degrees. Elbows
#: and knees are relative to the upper arm and thigh; the rest are absolute.
FREE_ANGLES: tuple[tuple[str, float, float], ...] = tuple(
    (f"{name}_{s}.{part}", lo, hi)
    for s in "lr"
    for name, ranges in (
        ("upper_arm", ((-45.0, 180.0), (-25.0, 165.0))),
        ("elbow", ((0.0, 150.0), (-60.0, 40.0))),
        ("thigh", ((-35.0, 110.0), (-5.0, 45.0))),
        ("knee", ((0.0, 130.0), (-5.0, 20.0))),
    )
    for part, (lo, hi) in zip(("pitch", "roll"), ranges, strict=True)
) + (("lean", -10.0, 45.0), ("lift", 0.0, 0.15))


def sample_free_motion(rng: np.random.Generator) -> Motion:
    """A motion that is no action: every joint angle drifts smoothly and on its own through a
    random part of its range. Clips of it teach a frame CNN poses beyond the actions' (they
    carry pose targets and no label)."""
    params: list[float] = []
    for name, lo, hi in FREE_ANGLES:
        a, b = sorted(rng.uniform(lo, hi, 2))
        if name == "lift" and rng.random() < 0.7:
            a = b = 0.0  # feet on the ground most of the time
        params += [a, b, rng.uniform(0.3, 2.0), rng.uniform(0.0, 2.0 * math.pi)]
    return Motion("free", free=tuple(params), sway_amp=0.0)


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


def sample_motion(label: str, rng: np.random.Generator, variant: str = "") -> tuple[Motion, float]:
    """Draws the motion parameters and the body yaw (degrees) for a clip of ``label``.

    ``variant`` (one of ``VARIANTS[kind]``, "" for the first) is how the action is performed;
    tempo, amplitude, timing and an occasional pause are drawn here for every variant. The
    base motion of a reversed label is drawn exactly as for its forward twin, so the same
    generator state gives the same motion for ``sit_down`` and ``stand_up``.
    """
    kind, _ = LABEL_MOTION[label]
    if variant and variant not in VARIANTS[kind]:
        raise ValueError(f"unknown {kind} variant {variant!r}; expected one of {VARIANTS[kind]}")
    dur = rng.uniform(0.5, 0.95)
    t0 = rng.uniform(0.0, 1.0 - dur)
    paused = rng.random() < 0.3
    common = dict(
        variant=variant,
        t0=t0,
        t1=t0 + dur,
        phase=rng.uniform(0.0, 2.0 * math.pi),
        amp=rng.uniform(0.8, 1.15),
        sway_phase=rng.uniform(0.0, 2.0 * math.pi),
        sway_amp=rng.uniform(0.0, 4.0),
        side=str(rng.choice(["l", "r"])),
        hold=rng.uniform(0.08, 0.22) if paused else 0.0,
        hold_at=rng.uniform(0.2, 0.6),
    )
    yaw = rng.uniform(-55.0, 55.0)
    if kind == "walk":
        direction = -1.0 if label == "walk_left" else 1.0
        yaw = direction * rng.uniform(60.0, 90.0)
        steps = (2.0, 4.0) if variant == "shuffle" else (1.0, 3.0)
        m = Motion("walk", cycles=rng.uniform(*steps), **common)
    elif kind in ("sit", "raise"):
        m = Motion(kind, **common)
    elif kind == "squat":
        m = Motion("squat", cycles=float(rng.integers(1, 4)), **common)
    elif kind == "jump":
        m = Motion(
            "jump", cycles=float(rng.integers(1, 3)), height=rng.uniform(0.12, 0.25), **common
        )
    elif kind in ("wave", "clap"):
        m = Motion(kind, cycles=rng.uniform(1.5, 5.0), **common)
    else:  # pragma: no cover - LABEL_MOTION and this switch are kept in step
        raise ValueError(f"unknown motion {kind!r}")
    return m, float(yaw)
