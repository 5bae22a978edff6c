"""An articulated 2.5D human figure: joint angles with limits, COCO-17 joints, depth for drawing order.

The figure lives in body units (the person's standing height is 1), image axes (x right, y down),
pelvis centre at the origin. The body turns about the vertical axis by `yaw` (0 = facing the
camera, pi = back to the camera); the person's own left is +x in the body's 3D frame, so a
front-facing person's left arm lands on the image's right and a back-facing one's on its left.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posewheel.schema import KEYPOINT_INDEX, NUM_KEYPOINTS

# Label-map ids: which body part owns a pixel. 0 is background, OCCLUDER anything in front.
BACKGROUND = 0
HEAD, NECK, TORSO = 1, 2, 3
L_UPPER_ARM, L_FOREARM, L_HAND = 4, 5, 6
R_UPPER_ARM, R_FOREARM, R_HAND = 7, 8, 9
L_THIGH, L_SHIN, L_FOOT = 10, 11, 12
R_THIGH, R_SHIN, R_FOOT = 13, 14, 15
OCCLUDER = 255
BODY_PARTS: tuple[int, ...] = tuple(range(1, 16))


def _owners() -> tuple[frozenset[int], ...]:
    by_name: dict[str, frozenset[int]] = {}
    for face in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"):
        by_name[face] = frozenset({HEAD})
    for side, (upper, fore, hand, thigh, shin, foot) in (
        ("left", (L_UPPER_ARM, L_FOREARM, L_HAND, L_THIGH, L_SHIN, L_FOOT)),
        ("right", (R_UPPER_ARM, R_FOREARM, R_HAND, R_THIGH, R_SHIN, R_FOOT)),
    ):
        by_name[f"{side}_shoulder"] = frozenset({TORSO, NECK, upper})
        by_name[f"{side}_elbow"] = frozenset({upper, fore})
        by_name[f"{side}_wrist"] = frozenset({fore, hand})
        by_name[f"{side}_hip"] = frozenset({TORSO, thigh})
        by_name[f"{side}_knee"] = frozenset({thigh, shin})
        by_name[f"{side}_ankle"] = frozenset({shin, foot})
    return tuple(by_name[name] for name in sorted(by_name, key=lambda n: KEYPOINT_INDEX[n]))


# JOINT_OWNERS[j]: the parts whose pixels show joint j itself (its own limb or the adjacent one).
JOINT_OWNERS: tuple[frozenset[int], ...] = _owners()


@dataclass(frozen=True)
class PoseRange:
    """Limits of the pose sampler, in degrees (angles) or fractions (foreshortening)."""

    lean: float  # torso lean from vertical, +/-
    head_tilt: float  # head roll relative to the torso, +/-
    yaw: float  # body turn away from pure front/back, +/-
    arm_abduction: tuple[float, float]  # upper arm from hanging down, outward positive
    elbow_bend: float  # 0..max
    hip_abduction: tuple[float, float]
    knee_bend: float  # 0..max
    thigh_foreshortening: tuple[float, float]  # projected/true length (crouching toward camera)
    roll: float  # whole-figure in-plane rotation, +/-
    lying: float  # probability of lying (roll near +/-90)
    overhead: float  # probability of arms overhead
    crouch: float  # probability of a crouch


@dataclass
class Part:
    """One filled shape of the figure: `polygon` (K, 2) body units, drawn in `depth` order."""

    part_id: int
    polygon: np.ndarray
    depth: float
    color: tuple[int, int, int]


@dataclass
class Figure:
    """A posed figure in body units: joints (17, 2), parts to draw, and self-hidden face joints."""

    joints: np.ndarray
    parts: list[Part]
    face_hidden: np.ndarray  # (17,) bool: joints turned away behind the head (nose/eyes from behind)
    facing: str  # "front" or "back"


def _deg(rng: np.random.Generator, limit: float) -> float:
    return float(np.radians(rng.uniform(-limit, limit)))


def _unit(angle: float) -> np.ndarray:
    """Direction at `angle` radians from straight down, turning toward +x."""
    return np.array([np.sin(angle), np.cos(angle)])


def capsule(a: np.ndarray, b: np.ndarray, ra: float, rb: float, steps: int = 5) -> np.ndarray:
    """A tapered limb with round ends from point a (radius ra) to b (radius rb): (2*steps+2, 2)."""
    d = b - a
    base = np.arctan2(d[1], d[0])
    arc = np.linspace(-np.pi / 2, np.pi / 2, steps + 1)
    end_b = b + rb * np.stack([np.cos(base + arc), np.sin(base + arc)], axis=1)
    end_a = a + ra * np.stack([np.cos(base + np.pi + arc), np.sin(base + np.pi + arc)], axis=1)
    return np.concatenate([end_b, end_a])


def ellipse(centre: np.ndarray, rx: float, ry: float, angle: float, steps: int = 18) -> np.ndarray:
    """An ellipse polygon (steps, 2) rotated by `angle` radians."""
    t = np.linspace(0, 2 * np.pi, steps, endpoint=False)
    pts = np.stack([rx * np.cos(t), ry * np.sin(t)], axis=1)
    c, s = np.cos(angle), np.sin(angle)
    return centre + pts @ np.array([[c, s], [-s, c]])


@dataclass(frozen=True)
class Outfit:
    """Colours of one person: skin, hair, shirt, trousers, shoes; sleeve and leg lengths."""

    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]
    shoes: tuple[int, int, int]
    long_sleeves: bool
    shorts: bool


_SKIN = np.array([[255, 224, 196], [241, 194, 125], [224, 172, 105], [198, 134, 66], [141, 85, 36], [94, 58, 34]])
_HAIR = np.array([[20, 16, 14], [60, 40, 25], [110, 75, 40], [200, 170, 110], [150, 150, 150], [120, 40, 20]])


def sample_outfit(rng: np.random.Generator) -> Outfit:
    """Clothing-like colours: saturated or muted shirts, mostly dark or denim trousers."""

    def pick(table: np.ndarray) -> tuple[int, int, int]:
        base = table[rng.integers(len(table))] + rng.normal(0, 8, 3)
        return tuple(int(v) for v in np.clip(base, 0, 255))  # type: ignore[return-value]

    def cloth(saturation: float) -> tuple[int, int, int]:
        grey = rng.uniform(30, 230)
        tint = rng.uniform(-1, 1, 3) * saturation * 110
        return tuple(int(v) for v in np.clip(grey + tint, 0, 255))  # type: ignore[return-value]

    trousers = (
        tuple(int(v) for v in np.clip(np.array([45, 65, 110]) + rng.normal(0, 15, 3), 0, 255))
        if rng.random() < 0.4
        else cloth(0.25)
    )
    return Outfit(
        skin=pick(_SKIN),
        hair=pick(_HAIR),
        shirt=cloth(rng.choice([0.2, 0.6, 1.0])),
        trousers=trousers,  # type: ignore[arg-type]
        shoes=cloth(0.15),
        long_sleeves=bool(rng.random() < 0.5),
        shorts=bool(rng.random() < 0.2),
    )


@dataclass(frozen=True)
class _Body:
    """One figure's frame while it is posed: which way it faces, its lean and proportions, in body units."""

    yaw: float  # radians; pi is a back view
    lean: float  # radians from upright
    size: np.ndarray  # (8,) per-person proportions
    up: np.ndarray  # image direction from pelvis toward neck
    across: np.ndarray  # image direction of body +x (the person's left) when facing the camera
    neck: np.ndarray

    @property
    def cos_y(self) -> float:
        return float(np.cos(self.yaw))

    @property
    def sin_y(self) -> float:
        return float(np.sin(self.yaw))

    def side_point(self, origin: np.ndarray, half: float, side: int) -> tuple[np.ndarray, float]:
        """A point `half` to the person's `side` (+1 left) of `origin` in the image, and its depth.

        x in the body's 3D frame projects to image x * cos(yaw), depth -x * sin(yaw).
        """
        return origin + self.across * half * side * self.cos_y, -half * side * self.sin_y


def sample_figure(rng: np.random.Generator, limits: PoseRange, outfit: Outfit) -> Figure:
    """Pose a figure within `limits`; joints (17, 2) in body units, pelvis at the origin.

    The random draws happen in a fixed order (body, limbs, head), so a seed gives the same figure.
    """
    back = bool(rng.random() < 0.5)
    yaw = _deg(rng, limits.yaw) + (np.pi if back else 0.0)
    size = rng.uniform(0.93, 1.07, 8)  # per-person proportions
    lean = _deg(rng, limits.lean)
    up = -_unit(lean)
    body = _Body(yaw, lean, size, up, np.array([-up[1], up[0]]), up * 0.30 * size[0])
    joints = np.zeros((NUM_KEYPOINTS, 2))
    parts: list[Part] = []
    shoulders_hips = _limbs(rng, body, limits, outfit, joints, parts)
    parts += _torso(body, shoulders_hips, outfit, back)
    hidden = _head(rng, body, limits, outfit, back, joints, parts)
    return Figure(joints=joints, parts=parts, face_hidden=hidden, facing="back" if back else "front")


def _limbs(
    rng: np.random.Generator, body: _Body, limits: PoseRange, outfit: Outfit, joints: np.ndarray, parts: list[Part]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Arms and legs of both sides into `joints` and `parts`; returns {side: (shoulder, hip)}."""
    idx, lean, size, up = KEYPOINT_INDEX, body.lean, body.size, body.up
    arm_front = 0.06 * body.cos_y  # arms hang a little in front of the torso plane
    overhead = rng.random() < limits.overhead
    crouch = rng.random() < limits.crouch
    # Knees seen from the front (or back) come back inward below splayed thighs; seen from the side
    # both shins point the same way in the image.
    mirrored_knees = rng.random() < 0.65
    knee_dir = 1.0 if rng.random() < 0.5 else -1.0
    bodies: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for side, name in ((1, "left"), (-1, "right")):
        image_side = float(np.sign(side * body.cos_y))  # +1 when this limb sits on the image's right
        shoulder, depth_s = body.side_point(body.neck - up * 0.02, 0.105 * size[1], side)
        hip, depth_h = body.side_point(np.zeros(2), 0.06 * size[1], side)
        abduction = np.radians(rng.uniform(130, 180) if overhead else rng.uniform(*limits.arm_abduction))
        upper_dir = _unit(lean + image_side * abduction)
        elbow = shoulder + upper_dir * 0.17 * size[2]
        bend = np.radians(rng.uniform(0, limits.elbow_bend)) * (1 if rng.random() < 0.5 else -1)
        wrist = elbow + _unit(lean + image_side * abduction + bend) * 0.15 * size[3]
        hip_abd = np.radians(rng.uniform(*limits.hip_abduction))
        shorten = rng.uniform(*limits.thigh_foreshortening) if crouch else rng.uniform(0.92, 1.0)
        knee = hip + _unit(lean * 0.3 + image_side * hip_abd) * 0.245 * size[4] * shorten
        knee_bend = np.radians(rng.uniform(0, limits.knee_bend if crouch else limits.knee_bend * 0.2))
        shin_angle = (
            image_side * (hip_abd - knee_bend) if mirrored_knees else image_side * hip_abd + knee_dir * knee_bend
        )
        ankle = knee + _unit(lean * 0.3 + shin_angle) * 0.245 * size[5]
        points = {"shoulder": shoulder, "elbow": elbow, "wrist": wrist, "hip": hip, "knee": knee, "ankle": ankle}
        for key, point in points.items():
            joints[idx[f"{name}_{key}"]] = point
        upper, fore, hand, thigh, shin, foot = (
            (L_UPPER_ARM, L_FOREARM, L_HAND, L_THIGH, L_SHIN, L_FOOT)
            if side == 1
            else (R_UPPER_ARM, R_FOREARM, R_HAND, R_THIGH, R_SHIN, R_FOOT)
        )
        fore_colour = outfit.shirt if outfit.long_sleeves else outfit.skin
        shin_colour = outfit.skin if outfit.shorts else outfit.trousers
        arm_depth = depth_s + arm_front
        leg_depth = depth_h - 0.05
        parts += [
            Part(upper, capsule(shoulder, elbow, 0.034, 0.027), arm_depth, outfit.shirt),
            Part(fore, capsule(elbow, wrist, 0.026, 0.02), arm_depth + 0.001, fore_colour),
            Part(hand, ellipse(wrist + (wrist - elbow) * 0.22, 0.024, 0.03, lean, 8), arm_depth + 0.002, outfit.skin),
            Part(thigh, capsule(hip, knee, 0.05, 0.038), leg_depth, outfit.trousers),
            Part(shin, capsule(knee, ankle, 0.036, 0.027), leg_depth + 0.001, shin_colour),
            Part(foot, ellipse(ankle + np.array([0.0, 0.025]), 0.035, 0.022, 0.0, 10), leg_depth + 0.002, outfit.shoes),
        ]
        bodies[side] = (shoulder, hip)
    return bodies


def _torso(body: _Body, bodies: dict[int, tuple[np.ndarray, np.ndarray]], outfit: Outfit, back: bool) -> list[Part]:
    """The torso from shoulders to hips, widened to the body's outline, and the shirt's front cues."""
    (ls, lh), (rs, rh) = bodies[1], bodies[-1]
    up = body.up
    width_s, width_h = 0.035, 0.03
    out_l = body.across * np.sign(body.cos_y)  # image direction of the person's left side
    outline = [
        ls + out_l * width_s,
        ls + up * 0.03,
        rs + up * 0.03,
        rs - out_l * width_s,
        (rs + rh) / 2 - out_l * 0.01,
        rh - out_l * width_h,
        rh - up * 0.035,
        lh - up * 0.035,
        lh + out_l * width_h,
        (ls + lh) / 2 + out_l * 0.01,
    ]
    parts = [Part(TORSO, np.array(outline), 0.0, outfit.shirt)]
    if not back:
        # What a viewer reads facing from below the head: a neckline and a button placket on the
        # front of the shirt. Without a body cue, the person's left/right is only decidable from the
        # face, far from the limbs, and a small network collapses both sides onto one limb.
        mid_s, mid_h = (ls + rs) / 2, (lh + rh) / 2
        neckline = np.array([ls + (rs - ls) * 0.3 + up * 0.02, rs + (ls - rs) * 0.3 + up * 0.02, mid_s - up * 0.06])
        parts.append(Part(TORSO, neckline, 0.001, outfit.skin))
        r, g, b = (int(c * 0.45) for c in outfit.shirt)
        placket = (r, g, b)
        for k in (0.3, 0.5, 0.7):
            parts.append(Part(TORSO, ellipse(mid_s + (mid_h - mid_s) * k, 0.009, 0.009, 0.0, 6), 0.002, placket))
    return parts


# Face points on the head's sphere: (x toward the person's left, y up, z toward the face), in radii,
# and how far toward the camera (depth) each must turn to be seen.
FACE = {
    "nose": ((0.0, -0.2, 1.0), 0.25),
    "left_eye": ((0.36, 0.12, 0.88), 0.3),
    "right_eye": ((-0.36, 0.12, 0.88), 0.3),
    "left_ear": ((0.88, 0.02, -0.1), -0.45),
    "right_ear": ((-0.88, 0.02, -0.1), -0.45),
}


def _head(
    rng: np.random.Generator,
    body: _Body,
    limits: PoseRange,
    outfit: Outfit,
    back: bool,
    joints: np.ndarray,
    parts: list[Part],
) -> np.ndarray:
    """Neck, head, hair and face joints (a sphere turning with yaw plus its own turn and tilt);
    returns which face joints are turned away (17,) bool."""
    idx, size = KEYPOINT_INDEX, body.size
    head_yaw = body.yaw + _deg(rng, 25.0)
    tilt = body.lean + _deg(rng, limits.head_tilt)
    head_up = -_unit(tilt)
    head_across = np.array([-head_up[1], head_up[0]])
    head_centre = body.neck + head_up * 0.115 * size[6]
    radius = 0.062 * size[7]
    parts.append(Part(NECK, capsule(body.neck - body.up * 0.01, head_centre, 0.03, 0.028), 0.005, outfit.skin))
    t = np.linspace(0, 2 * np.pi, 20, endpoint=False)[:, None]
    head_shape = head_centre - head_up * 0.01 + head_across * radius * np.cos(t) + head_up * radius * 1.22 * np.sin(t)
    parts.append(Part(HEAD, head_shape, 0.01, outfit.skin))
    # Hair: a cap from the front, most of the head from behind.
    reach = 0.9 if back else rng.uniform(-0.45, -0.15)
    t = np.linspace(-reach, np.pi + reach, 14)[:, None]
    hair = head_centre - head_up * 0.01 + head_across * radius * 1.04 * np.cos(t) + head_up * radius * 1.26 * np.sin(t)
    parts.append(Part(HEAD, hair, 0.011, outfit.hair))
    ch, sh = np.cos(head_yaw), np.sin(head_yaw)
    hidden = np.zeros(NUM_KEYPOINTS, dtype=bool)
    for name, ((x, y, z), seen_above) in FACE.items():
        x_img = x * ch + z * sh
        depth = -x * sh + z * ch
        joints[idx[name]] = head_centre + (head_across * x_img + head_up * y) * radius
        hidden[idx[name]] = depth < seen_above
        if name.endswith("eye") and depth > 0.3:  # draw the eyes that face the camera
            eye = ellipse(joints[idx[name]], 0.011, 0.008, 0.0, 6)
            parts.append(Part(HEAD, eye, 0.012, (35, 25, 20)))
    return hidden
