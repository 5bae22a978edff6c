"""Domains and scenes: one person over a studio or street background, with truth read from the render.

`studio` is the lab: plain or gradient backdrops, upright centred people, no clutter. `street`
is production: textured and cluttered backgrounds, distractor shapes (some skin-coloured and
limb-like), occluders in front of the person, blur, noise, lighting changes and a wider pose range
(crouching, arms overhead, lying). Every sample is a pure function of (domain, seed, index, size).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from posewheel.schema import V_NOT_LABELED
from posewheel.synth.appearance import (
    clothing_texture,
    distractors,
    floor_shadow,
    occluders,
    street_background,
    street_degrade,
    studio_background,
)
from posewheel.synth.figure import Figure, Outfit, PoseRange, sample_figure, sample_outfit
from posewheel.synth.render import draw_figure, place, visibility


@dataclass(frozen=True)
class Domain:
    """How a domain's scenes are drawn: pose limits, framing and clutter."""

    name: str
    code: int  # mixed into the random seed so domains never share a stream
    pose: PoseRange
    fill: tuple[float, float]  # figure's longer side as a fraction of the image
    centre_jitter: float  # figure-centre offset from the image centre, fraction of the image
    cluttered: bool
    # Scenes of several persons (group.py): a person's longer side as a fraction of the image, far to
    # near, and how far from the middle a person's centre may stand, fraction of the image.
    group_fill: tuple[float, float] = (0.3, 0.85)
    group_spread: float = 0.36


STUDIO = Domain(
    name="studio",
    code=1,
    pose=PoseRange(
        lean=6,
        head_tilt=10,
        yaw=30,
        arm_abduction=(4, 50),
        elbow_bend=60,
        hip_abduction=(0, 12),
        knee_bend=25,
        thigh_foreshortening=(0.9, 1.0),
        roll=5,
        lying=0.0,
        overhead=0.0,
        crouch=0.0,
    ),
    fill=(0.72, 0.9),
    centre_jitter=0.03,
    cluttered=False,
    group_fill=(0.32, 0.85),
    group_spread=0.36,  # everyone in frame, as a lab would shoot them
)
STREET = Domain(
    name="street",
    code=2,
    pose=PoseRange(
        lean=25,
        head_tilt=25,
        yaw=55,
        arm_abduction=(-35, 120),
        elbow_bend=140,
        hip_abduction=(-8, 40),
        knee_bend=130,
        thigh_foreshortening=(0.35, 0.9),
        roll=25,
        lying=0.15,
        overhead=0.25,
        crouch=0.3,
    ),
    fill=(0.55, 1.0),
    centre_jitter=0.16,
    cluttered=True,
    group_fill=(0.18, 0.95),
    group_spread=0.5,  # people at the edges are cut by the frame
)
DOMAINS: dict[str, Domain] = {d.name: d for d in (STUDIO, STREET)}


@dataclass
class Sample:
    """One rendered image with its truth.

    image: RGB, size x size. keypoints: (17, 3) float64, continuous pixels, v in {0,1,2} (x=y=0
    where v=0). bbox: [x, y, w, h] pixels around the person's visible-or-occluded body inside the
    image. labels: (size, size) uint8 part map (see figure.py ids). face_hidden: (17,) bool.
    projected: (17, 2) where every joint projects, pixels, also those outside the image.
    """

    image: Image.Image
    keypoints: np.ndarray
    bbox: tuple[float, float, float, float]
    labels: np.ndarray
    face_hidden: np.ndarray
    facing: str
    projected: np.ndarray


def sample_person(rng: np.random.Generator, domain: Domain) -> tuple[Outfit, Figure, float]:
    """One person of `domain`: clothes, pose, and the in-plane roll in radians (near +/-pi/2 when lying)."""
    outfit = sample_outfit(rng)
    figure = sample_figure(rng, domain.pose, outfit)
    roll = float(np.radians(rng.uniform(-domain.pose.roll, domain.pose.roll)))
    if rng.random() < domain.pose.lying:
        roll = float(np.radians(rng.choice([-90.0, 90.0]) + rng.uniform(-20, 20)))
    return outfit, figure, roll


def _rng(domain: Domain, seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([domain.code, seed, index])


def render_sample(domain: Domain, seed: int, index: int, size: int = 256) -> Sample:
    """Render image `index` of the (domain, seed) stream at `size` x `size` pixels."""
    rng = _rng(domain, seed, index)
    outfit, figure, roll = sample_person(rng, domain)
    fill = float(rng.uniform(*domain.fill))
    centre = tuple(size / 2 + rng.uniform(-domain.centre_jitter, domain.centre_jitter, 2) * size)
    placement = place(figure, size, fill, (float(centre[0]), float(centre[1])), roll)

    image = street_background(rng, size) if domain.cluttered else studio_background(rng, size)
    rgb = ImageDraw.Draw(image)
    if domain.cluttered:
        distractors(rng, rgb, size)
    else:
        floor_shadow(image, rgb, placement.apply(figure.joints[-2:]), placement.height)
    label_image = Image.new("L", (size, size), 0)
    labels = ImageDraw.Draw(label_image)
    draw_figure(rgb, labels, figure, placement)

    body = np.asarray(label_image)
    rows, cols = np.flatnonzero(body.any(axis=1)), np.flatnonzero(body.any(axis=0))
    bbox = (float(cols[0]), float(rows[0]), float(cols[-1] + 1 - cols[0]), float(rows[-1] + 1 - rows[0]))
    if rng.random() < 0.6:
        pixels = np.array(image)
        shirt = (3, 4, 7) + ((5, 8) if outfit.long_sleeves else ())
        clothing_texture(rng, pixels, body, shirt if rng.random() < 0.7 else (10, 11, 13, 14))
        image = Image.fromarray(pixels)
        rgb = ImageDraw.Draw(image)
    if domain.cluttered and rng.random() < 0.65:
        occluders(rng, rgb, labels, body > 0, bbox)
    if domain.cluttered:
        image = street_degrade(rng, image)

    label_map = np.asarray(label_image)
    joints = placement.apply(figure.joints)
    flags = visibility(joints, label_map, figure.face_hidden)
    keypoints = np.concatenate([joints, flags[:, None].astype(np.float64)], axis=1)
    keypoints[flags == V_NOT_LABELED, :2] = 0.0
    return Sample(image, keypoints, bbox, label_map, figure.face_hidden, figure.facing, joints)
