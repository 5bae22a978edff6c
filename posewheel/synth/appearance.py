"""How a scene looks around and on its people: backdrops, clutter, occluders, shadows, cloth, camera.

Shared by the one-person scenes (`scene.py`) and the scenes of several persons (`group.py`). Every
function draws with the random generator it is given, so a scene stays a pure function of its seed.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from posewheel.synth.figure import OCCLUDER, capsule, ellipse

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


def _colour(rng: np.random.Generator, lo: float = 0, hi: float = 255) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.uniform(lo, hi, 3))  # type: ignore[return-value]


def studio_background(rng: np.random.Generator, size: int) -> Image.Image:
    """A plain backdrop, or a vertical gradient between two close tones."""
    base = np.clip(rng.uniform(150, 245) + rng.uniform(-25, 25, 3), 0, 255)
    if rng.random() < 0.4:
        return Image.new("RGB", (size, size), tuple(int(v) for v in base))
    other = np.clip(base * rng.uniform(0.6, 1.05), 0, 255)
    t = np.linspace(0.0, 1.0, 256)
    luts = [(b * (1 - t) + o * t + 0.5).astype(np.uint8).tolist() for b, o in zip(base, other, strict=True)]
    ramp = _ramp(size)
    return Image.merge("RGB", [ramp.point(lut) for lut in luts])


def street_background(rng: np.random.Generator, size: int) -> Image.Image:
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


def distractors(rng: np.random.Generator, draw: ImageDraw.ImageDraw, size: int) -> None:
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


def occluders(
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
        poly = ellipse(
            np.array([cx, cy]),
            rng.uniform(0.12, 0.35) * w,
            rng.uniform(0.06, 0.2) * h,
            float(rng.uniform(0, np.pi)),
            14,
        )
    return [(float(px), float(py)) for px, py in poly]


def clothing_texture(rng: np.random.Generator, rgb: np.ndarray, labels: np.ndarray, parts: tuple[int, ...]) -> None:
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


def street_degrade(rng: np.random.Generator, image: Image.Image) -> Image.Image:
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


def floor_shadow(image: Image.Image, rgb: ImageDraw.ImageDraw, ankles: np.ndarray, height: float) -> None:
    """A soft contact shadow under the feet (background only: it never hides the person)."""
    cx, cy = float(ankles[:, 0].mean()), float(ankles[:, 1].max()) + 0.03 * height
    half_w, half_h = 0.2 * height, 0.025 * height
    x, y = min(max(int(cx), 0), image.width - 1), min(max(int(cy), 0), image.height - 1)
    under = image.getpixel((x, y))
    shade = tuple(int(c * 0.82) for c in under) if isinstance(under, tuple) else (90, 90, 90)
    rgb.ellipse((cx - half_w, cy - half_h, cx + half_w, cy + half_h), fill=shade)
