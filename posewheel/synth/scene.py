"""Domains and scenes: one person over a studio or street background, with truth read from the render.

`studio` is the lab: plain or gradient backdrops, upright centred people, no clutter. `street`
is production: textured and cluttered backgrounds, distractor shapes (some skin-coloured and
limb-like), occluders in front of the person, blur, noise, lighting changes and a wider pose range
(crouching, arms overhead, lying). Every sample is a pure function of (domain, seed, index, size).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from posewheel.schema import V_NOT_LABELED
from posewheel.synth.figure import OCCLUDER, PoseRange, capsule, ellipse, sample_figure, sample_outfit
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


STUDIO = Domain(
    name="studio",
    code=1,
    pose=PoseRange(lean=6, head_tilt=10, yaw=30, arm_abduction=(4, 50), elbow_bend=60, hip_abduction=(0, 12),
                   knee_bend=25, thigh_foreshortening=(0.9, 1.0), roll=5, lying=0.0, overhead=0.0, crouch=0.0),
    fill=(0.72, 0.9),
    centre_jitter=0.03,
    cluttered=False,
)  # fmt: skip
STREET = Domain(
    name="street",
    code=2,
    pose=PoseRange(lean=25, head_tilt=25, yaw=55, arm_abduction=(-35, 120), elbow_bend=140, hip_abduction=(-8, 40),
                   knee_bend=130, thigh_foreshortening=(0.35, 0.9), roll=25, lying=0.15, overhead=0.25, crouch=0.3),
    fill=(0.55, 1.0),
    centre_jitter=0.16,
    cluttered=True,
)  # fmt: skip
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


NOISE_SIGMAS = (3.0, 5.0, 8.0, 11.0, 15.0)  # sensor noise levels of street images, 8-bit units


@functools.lru_cache(maxsize=4)
def _noise_bank(size: int) -> tuple[Image.Image, ...]:
    """Fixed Gaussian noise fields, one per level in NOISE_SIGMAS: "L" images (size + 64)^2 centred on 128.

    Images take randomly offset windows of them: as random as fresh noise for a model, a fraction
    of the cost, and still a pure function of the image's seed.
    """
    unit = np.random.default_rng(20240917).standard_normal((size + 64, size + 64), dtype=np.float32)
    return tuple(Image.fromarray(np.clip(unit * s + 128.5, 0, 255).astype(np.uint8)) for s in NOISE_SIGMAS)


@functools.lru_cache(maxsize=4)
def _ramp(size: int) -> Image.Image:
    """A vertical 0..255 gradient, "L", size x size."""
    return Image.linear_gradient("L").resize((size, size), Image.Resampling.BILINEAR)


def _rng(domain: Domain, seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([domain.code, seed, index])


def _colour(rng: np.random.Generator, lo: float = 0, hi: float = 255) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.uniform(lo, hi, 3))  # type: ignore[return-value]


def _studio_background(rng: np.random.Generator, size: int) -> Image.Image:
    """A plain backdrop, or a vertical gradient between two close tones."""
    base = np.clip(rng.uniform(150, 245) + rng.uniform(-25, 25, 3), 0, 255)
    if rng.random() < 0.4:
        return Image.new("RGB", (size, size), tuple(int(v) for v in base))
    other = np.clip(base * rng.uniform(0.6, 1.05), 0, 255)
    t = np.linspace(0.0, 1.0, 256)
    luts = [(b * (1 - t) + o * t + 0.5).astype(np.uint8).tolist() for b, o in zip(base, other, strict=True)]
    ramp = _ramp(size)
    return Image.merge("RGB", [ramp.point(lut) for lut in luts])


def _street_background(rng: np.random.Generator, size: int) -> Image.Image:
    cells = int(rng.integers(3, 9))
    tint = rng.uniform(-40, 40, 3)
    blobs = np.clip(rng.uniform(50, 210, (cells, cells, 1)) + tint + rng.normal(0, 15, (cells, cells, 3)), 0, 255)
    blobs = blobs.astype(np.uint8)
    image = Image.fromarray(blobs).resize((size, size), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    horizon = int(size * rng.uniform(0.45, 0.8))
    ground = _colour(rng, 50, 140)
    draw.rectangle((0, horizon, size, size), fill=ground)
    for _ in range(int(rng.integers(2, 7))):  # paving lines converging on the horizon
        x = float(rng.uniform(-size, 2 * size))
        draw.line((size / 2, horizon, x, size), fill=_colour(rng, 30, 200), width=int(rng.integers(1, 4)))
    for _ in range(int(rng.integers(2, 6))):  # buildings with windows
        x0, w = rng.uniform(-0.2, 1.0) * size, rng.uniform(0.15, 0.5) * size
        top = rng.uniform(0.0, 0.5) * horizon
        draw.rectangle((x0, top, x0 + w, horizon), fill=_colour(rng, 60, 230))
        window = _colour(rng, 20, 255)
        step = max(4.0, float(w / rng.integers(2, 5)))
        for wx in np.arange(x0 + step * 0.25, x0 + w - step * 0.5, step)[:5]:
            for wy in np.arange(top + step * 0.25, horizon - step * 0.5, step)[:4]:
                draw.rectangle((wx, wy, wx + step * 0.5, wy + step * 0.5), fill=window)
    return image


def _distractors(rng: np.random.Generator, draw: ImageDraw.ImageDraw, size: int) -> None:
    """Shapes behind the person, some skin-coloured and limb-like to tempt the model."""
    for _ in range(int(rng.integers(2, 8))):
        kind = rng.random()
        a = rng.uniform(0, size, 2)
        if kind < 0.35:  # limb-like
            b = a + rng.normal(0, size * 0.15, 2)
            r = size * rng.uniform(0.01, 0.035)
            poly = capsule(a, b, r, r * 0.8)
            colour = _colour(rng, 90, 250) if rng.random() < 0.5 else (int(rng.uniform(150, 250)), 150, 110)
        elif kind < 0.7:
            rx, ry = rng.uniform(0.02, 0.12, 2) * size
            poly = ellipse(a, float(rx), float(ry), float(rng.uniform(0, np.pi)), 14)
            colour = _colour(rng)
        else:
            poly = a + rng.uniform(-0.12, 0.12, (int(rng.integers(3, 6)), 2)) * size
            colour = _colour(rng)
        draw.polygon([(float(x), float(y)) for x, y in poly], fill=colour)


def _occluders(
    rng: np.random.Generator,
    rgb: ImageDraw.ImageDraw,
    labels: ImageDraw.ImageDraw,
    body: np.ndarray,
    bbox: tuple[float, float, float, float],
    max_cover: float = 0.5,
) -> None:
    """Poles, boxes, bushes and signs in front of the person, overlapping its box.

    body: (H, W) bool, the person's pixels. A candidate hiding more than `max_cover` of them is
    redrawn elsewhere (up to three tries), so the person stays recognisable.
    """
    x, y, w, h = bbox
    size = body.shape[0]
    area = max(1, int(body.sum()))
    for _ in range(int(rng.choice([1, 1, 2]))):
        for _try in range(3):
            xy = _occluder_shape(rng, x, y, w, h)
            scratch = Image.new("1", (size, size), 0)
            ImageDraw.Draw(scratch).polygon(xy, fill=1)
            if np.count_nonzero(np.asarray(scratch) & body) <= max_cover * area:
                rgb.polygon(xy, fill=_colour(rng, 20, 235))
                labels.polygon(xy, fill=OCCLUDER)
                break


def _occluder_shape(rng: np.random.Generator, x: float, y: float, w: float, h: float) -> list[tuple[float, float]]:
    """One occluder polygon near the person box (x, y, w, h), pixels."""
    cx, cy = x + rng.uniform(0, 1) * w, y + rng.uniform(0.2, 1.1) * h
    kind = rng.random()
    if kind < 0.3:  # pole
        half = rng.uniform(0.03, 0.09) * w
        poly = np.array([[cx - half, cy - h * 2], [cx + half, cy - h * 2], [cx + half, cy + h], [cx - half, cy + h]])
    elif kind < 0.65:  # box / car body / bench
        ow, oh = rng.uniform(0.3, 0.9) * w, rng.uniform(0.15, 0.45) * h
        poly = np.array([[cx - ow / 2, cy], [cx + ow / 2, cy], [cx + ow / 2, cy + oh * 3], [cx - ow / 2, cy + oh * 3]])
    else:  # bush / bag / sign
        poly = ellipse(np.array([cx, cy]), rng.uniform(0.12, 0.35) * w, rng.uniform(0.06, 0.2) * h,
                       float(rng.uniform(0, np.pi)), 14)  # fmt: skip
    return [(float(px), float(py)) for px, py in poly]


def _clothing_texture(rng: np.random.Generator, rgb: np.ndarray, labels: np.ndarray, parts: tuple[int, ...]) -> None:
    """Stripes or checks on the given clothing parts, in place; rgb (H, W, 3) uint8."""
    rows, cols = np.flatnonzero(labels.any(axis=1)), np.flatnonzero(labels.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1  # work inside the person's box only
    wanted = np.zeros(256, dtype=bool)
    wanted[list(parts)] = True
    mask = wanted[labels[y0:y1, x0:x1]]
    period = rng.uniform(3, 9) * labels.shape[0] / 256
    angle = rng.uniform(0, np.pi)
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] * np.float32(np.pi / period)
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] * np.float32(np.pi / period)
    stripes = np.sin(xs * np.float32(np.cos(angle)) + ys * np.float32(np.sin(angle))) > 0
    if rng.random() < 0.3:
        stripes ^= np.sin(ys * np.float32(np.cos(angle)) - xs * np.float32(np.sin(angle))) > 0
    region = rgb[y0:y1, x0:x1]
    chosen = mask & stripes
    region[chosen] = (region[chosen] * rng.uniform(0.55, 0.85)).astype(np.uint8)


def _street_degrade(rng: np.random.Generator, image: Image.Image) -> Image.Image:
    """Lighting (colour cast, gamma, a shadow gradient), blur and colour sensor noise; all in PIL's C code."""
    size = image.width
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.BoxBlur(float(rng.uniform(0.5, 1.5))))
    gain = rng.uniform(0.6, 1.35) * rng.uniform(0.85, 1.15, 3)
    gamma = rng.uniform(0.7, 1.4)
    levels = np.arange(256) / 255.0
    lut = np.concatenate([np.clip(levels * g, 0, 1) ** gamma for g in gain]) * 255 + 0.5
    image = image.point(lut.astype(np.uint8).tolist())
    if rng.random() < 0.8:
        darkest = rng.uniform(0.55, 0.95)
        shade = _ramp(size).point((np.linspace(darkest, 1.0, 256) * 255).astype(np.uint8).tolist())
        turn = rng.choice([Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270])
        shade = shade.transpose(turn) if rng.random() < 0.75 else shade
        image = ImageChops.multiply(image, Image.merge("RGB", (shade, shade, shade)))
    if rng.random() < 0.7:
        bank = _noise_bank(size)[int(rng.integers(len(NOISE_SIGMAS)))]
        corners = rng.integers(0, 64, (3, 2))
        channels = [bank.crop((int(x), int(y), int(x) + size, int(y) + size)) for x, y in corners]
        image = ImageChops.add(image, Image.merge("RGB", channels), 1.0, -128)
    return image


def _floor_shadow(image: Image.Image, rgb: ImageDraw.ImageDraw, ankles: np.ndarray, height: float) -> None:
    """A soft contact shadow under the feet (background only: it never hides the person)."""
    cx, cy = float(ankles[:, 0].mean()), float(ankles[:, 1].max()) + 0.03 * height
    half_w, half_h = 0.2 * height, 0.025 * height
    x, y = min(max(int(cx), 0), image.width - 1), min(max(int(cy), 0), image.height - 1)
    under = image.getpixel((x, y))
    shade = tuple(int(c * 0.82) for c in under) if isinstance(under, tuple) else (90, 90, 90)
    rgb.ellipse((cx - half_w, cy - half_h, cx + half_w, cy + half_h), fill=shade)


def render_sample(domain: Domain, seed: int, index: int, size: int = 256) -> Sample:
    """Render image `index` of the (domain, seed) stream at `size` x `size` pixels."""
    rng = _rng(domain, seed, index)
    outfit = sample_outfit(rng)
    figure = sample_figure(rng, domain.pose, outfit)
    roll = float(np.radians(rng.uniform(-domain.pose.roll, domain.pose.roll)))
    if rng.random() < domain.pose.lying:
        roll = float(np.radians(rng.choice([-90.0, 90.0]) + rng.uniform(-20, 20)))
    fill = float(rng.uniform(*domain.fill))
    centre = tuple(size / 2 + rng.uniform(-domain.centre_jitter, domain.centre_jitter, 2) * size)
    placement = place(figure, size, fill, (float(centre[0]), float(centre[1])), roll)

    image = _street_background(rng, size) if domain.cluttered else _studio_background(rng, size)
    rgb = ImageDraw.Draw(image)
    if domain.cluttered:
        _distractors(rng, rgb, size)
    else:
        _floor_shadow(image, rgb, placement.apply(figure.joints[-2:]), placement.height)
    label_image = Image.new("L", (size, size), 0)
    labels = ImageDraw.Draw(label_image)
    draw_figure(rgb, labels, figure, placement)

    body = np.asarray(label_image)
    rows, cols = np.flatnonzero(body.any(axis=1)), np.flatnonzero(body.any(axis=0))
    bbox = (float(cols[0]), float(rows[0]), float(cols[-1] + 1 - cols[0]), float(rows[-1] + 1 - rows[0]))
    if rng.random() < 0.6:
        pixels = np.array(image)
        shirt = (3, 4, 7) + ((5, 8) if outfit.long_sleeves else ())
        _clothing_texture(rng, pixels, body, shirt if rng.random() < 0.7 else (10, 11, 13, 14))
        image = Image.fromarray(pixels)
        rgb = ImageDraw.Draw(image)
    if domain.cluttered and rng.random() < 0.65:
        _occluders(rng, rgb, labels, body > 0, bbox)
    if domain.cluttered:
        image = _street_degrade(rng, image)

    label_map = np.asarray(label_image)
    joints = placement.apply(figure.joints)
    flags = visibility(joints, label_map, figure.face_hidden)
    keypoints = np.concatenate([joints, flags[:, None].astype(np.float64)], axis=1)
    keypoints[flags == V_NOT_LABELED, :2] = 0.0
    return Sample(image, keypoints, bbox, label_map, figure.face_hidden, figure.facing, joints)
