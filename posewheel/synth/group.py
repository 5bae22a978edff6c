"""Scenes of several persons (0 to N): overlapping, occluding each other, at different scales.

    from posewheel.synth import DOMAINS, render_group
    scene = render_group(DOMAINS["street"], seed=0, index=7, persons=(0, 4))
    [(p.keypoints, p.bbox, p.facing) for p in scene.persons]   # far to near; [] for an empty image

The opt-in multi-person mode beside `scene.render_sample` (one person per image, unchanged). Each
image draws from its own random stream, (domain, seed, index, GROUP_STREAM), which no one-person
image uses. Persons stand on a ground plane: the nearer, the larger, the lower their feet in the
image and the later painted. Half of them stand beside an earlier person, so boxes overlap. A
person that would hide more than MAX_COVER of a farther person's body is placed again (up to
PLACEMENT_TRIES times), else it is left out of the scene: everyone drawn stays recognisable.

Truth is read from the rendering, as for one person: the part map says which part covers a pixel
and the owner map which person, so a joint under a nearer person, an occluder or its own other limb
gets v=1, a joint outside the image v=0. A person's box is its whole drawn body inside the image,
also where a nearer person or an occluder covers it (the one-person convention). A drawn person
with fewer than MIN_VISIBLE_JOINTS visible (v=2) joints is left out of the annotations and the
truth: too little of it shows to label, and a box around someone hidden would teach a top-down
model to find joints on the person in front.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from posewheel.schema import V_NOT_LABELED, V_VISIBLE
from posewheel.synth.appearance import (
    clothing_texture,
    distractors,
    floor_shadow,
    occluders,
    street_background,
    street_degrade,
    studio_background,
)
from posewheel.synth.figure import BACKGROUND, OCCLUDER, Figure, Outfit
from posewheel.synth.render import Placement, draw_figure, place, silhouette, visibility
from posewheel.synth.scene import Domain, sample_person

GROUP_STREAM = 0x47525550  # "GRUP", mixed into every group image's seed
DEFAULT_PERSONS = (0, 4)  # persons per image when the multi-person mode is asked for
MAX_PERSONS = 16
MAX_COVER = 0.6  # share of a farther person's body a nearer one may hide
PLACEMENT_TRIES = 4
BESIDE = 0.5  # chance that a person stands next to an earlier (farther) one
OCCLUDED = 0.4  # street: chance that a person gets occluders in front of it
MIN_VISIBLE_JOINTS = 3


@dataclass
class Person:
    """One annotated person of a scene.

    keypoints: (17, 3) float64, continuous pixels, v in {0,1,2} (x=y=0 where v=0). bbox: [x, y, w,
    h] pixels around the whole drawn body inside the image. layer: its value in the scene's owner
    map. projected: (17, 2) pixels where every joint projects, also outside the image. face_hidden:
    (17,) bool, face points turned away from the camera.
    """

    keypoints: np.ndarray
    bbox: tuple[float, float, float, float]
    facing: str
    layer: int
    projected: np.ndarray
    face_hidden: np.ndarray


@dataclass
class GroupSample:
    """One rendered image of 0..N persons with their truth.

    image: RGB, size x size. persons: the annotated ones, far to near. labels: (size, size) uint8
    part map (figure.py ids, OCCLUDER). owners: (size, size) uint8, the layer of the person whose
    body a pixel shows, 0 for background and occluders. drawn: persons painted, annotated or not.
    """

    image: Image.Image
    persons: list[Person]
    labels: np.ndarray
    owners: np.ndarray
    drawn: int


@dataclass
class _Layer:
    outfit: Outfit
    figure: Figure
    placement: Placement
    body: np.ndarray  # (size, size) bool: every pixel the person is drawn on
    shown: np.ndarray  # (size, size) bool: those no nearer person covers
    area: int
    bbox: tuple[float, float, float, float]  # [x, y, w, h] px around `body`


def _box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """[x, y, w, h] pixels of the tightest box around a non-empty (H, W) bool mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1 - cols[0]), float(rows[-1] + 1 - rows[0])


def check_persons(persons: tuple[int, int]) -> tuple[int, int]:
    """(lo, hi) persons per image, checked: 0 <= lo <= hi <= MAX_PERSONS."""
    lo, hi = (int(n) for n in persons)
    if not 0 <= lo <= hi <= MAX_PERSONS:
        raise ValueError(f"persons per image must be (lo, hi) with 0 <= lo <= hi <= {MAX_PERSONS}, got {persons}")
    return lo, hi


def _stand(figure: Figure, size: int, fill: float, x: float, feet: float, roll: float) -> Placement:
    """The placement with the figure's box centred on column `x` and its lowest point at row `feet`, px."""
    placement = place(figure, size, fill, (x, feet), roll)
    bottom = float(placement.apply(np.concatenate([p.polygon for p in figure.parts]))[:, 1].max())
    ox, oy = placement.offset
    return Placement(placement.roll, placement.height, (ox, oy + feet - bottom))


def _place(
    rng: np.random.Generator,
    domain: Domain,
    size: int,
    outfit: Outfit,
    figure: Figure,
    fill: float,
    roll: float,
    farther: list[_Layer],
) -> _Layer | None:
    """Stand a person in front of `farther` without hiding more than MAX_COVER of any; None if it never fits."""
    lo, hi = domain.group_fill
    near = (fill - lo) / (hi - lo)  # 0 the farthest possible, 1 the nearest
    for _ in range(PLACEMENT_TRIES):
        if farther and rng.random() < BESIDE:
            x0, _, w, _ = farther[int(rng.integers(len(farther)))].bbox
            x = x0 + w / 2 + rng.uniform(-0.75, 0.75) * max(w, 0.3 * fill * size)
        else:
            x = size / 2 + rng.uniform(-domain.group_spread, domain.group_spread) * size
        feet = size * (0.62 + 0.36 * near + rng.uniform(-0.06, 0.06))
        placement = _stand(figure, size, fill, float(x), float(feet), roll)
        body = silhouette(figure, placement, size)
        area = int(np.count_nonzero(body))
        if area == 0:
            continue
        if all(np.count_nonzero(f.shown & ~body) >= (1 - MAX_COVER) * f.area for f in farther):
            for f in farther:
                f.shown &= ~body
            return _Layer(outfit, figure, placement, body, body.copy(), area, _box(body))
    return None


def render_group(
    domain: Domain, seed: int, index: int, size: int = 256, persons: tuple[int, int] = DEFAULT_PERSONS
) -> GroupSample:
    """Render image `index` of the (domain, seed) group stream: lo..hi persons (uniform), size x size px."""
    lo, hi = check_persons(persons)
    rng = np.random.default_rng([domain.code, seed, index, GROUP_STREAM])
    count = int(rng.integers(lo, hi + 1))
    people = [sample_person(rng, domain) for _ in range(count)]
    fills = np.sort(rng.uniform(*domain.group_fill, count))  # small = far: painted first
    layers: list[_Layer] = []
    for (outfit, figure, roll), fill in zip(people, fills, strict=True):
        layer = _place(rng, domain, size, outfit, figure, float(fill), roll, layers)
        if layer is not None:
            layers.append(layer)

    image = street_background(rng, size) if domain.cluttered else studio_background(rng, size)
    rgb = ImageDraw.Draw(image)
    if domain.cluttered:
        distractors(rng, rgb, size)
    else:
        for layer in layers:
            floor_shadow(image, rgb, layer.placement.apply(layer.figure.joints[-2:]), layer.placement.height)
    label_image = Image.new("L", (size, size), 0)
    labels = ImageDraw.Draw(label_image)
    owners = np.zeros((size, size), dtype=np.uint8)
    for k, layer in enumerate(layers, start=1):
        draw_figure(rgb, labels, layer.figure, layer.placement)
        owners[layer.body] = k

    parts = np.asarray(label_image)
    pixels: np.ndarray | None = None
    for k, layer in enumerate(layers, start=1):
        if rng.random() < 0.6:
            shirt = (3, 4, 7) + ((5, 8) if layer.outfit.long_sleeves else ())
            chosen = shirt if rng.random() < 0.7 else (10, 11, 13, 14)
            pixels = np.array(image) if pixels is None else pixels
            clothing_texture(rng, pixels, np.where(owners == k, parts, BACKGROUND), chosen)
    if pixels is not None:
        image = Image.fromarray(pixels)
        rgb = ImageDraw.Draw(image)
    if domain.cluttered:
        for k, layer in enumerate(layers, start=1):
            if rng.random() < OCCLUDED:
                occluders(rng, rgb, labels, owners == k, layer.bbox)
        image = street_degrade(rng, image)

    label_map = np.asarray(label_image)
    owners[label_map == OCCLUDER] = 0
    others = np.where(label_map == BACKGROUND, BACKGROUND, OCCLUDER).astype(np.uint8)
    annotated: list[Person] = []
    for k, layer in enumerate(layers, start=1):
        own = np.where(owners == k, label_map, others)  # anyone else's body counts as an occluder
        joints = layer.placement.apply(layer.figure.joints)
        flags = visibility(joints, own, layer.figure.face_hidden)
        if np.count_nonzero(flags == V_VISIBLE) < MIN_VISIBLE_JOINTS:
            continue
        keypoints = np.concatenate([joints, flags[:, None].astype(np.float64)], axis=1)
        keypoints[flags == V_NOT_LABELED, :2] = 0.0
        annotated.append(Person(keypoints, layer.bbox, layer.figure.facing, k, joints, layer.figure.face_hidden))
    return GroupSample(image, annotated, label_map, owners, len(layers))
