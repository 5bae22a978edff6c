"""Pictures made of the real photographs the tests and benchmarks share: one person far away on a phone-sized picture
(`far_people`, benchmarks/far_people.py), large pictures of nobody (`nobody`), and a photograph's noise (`noisy`,
benchmarks/photo_noise.py); benchmarks/phone_jpeg.py reads them all as a phone's JPEGs (`jpeg`)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from tests.support.moving_people import one_person_keypoints
from training.realphotos import CHECK_SET, SINGLE_PEOPLE

SIZE = (4032, 3024)
HEIGHTS = (500, 700, 900, 1200)
EMPTY_PHOTOS = ("nobody_cat", "nobody_coffee", "nobody_rocket")
# Of the pasted photograph's side: an answer whose keypoints lie this near the original MoveNet's there, by their median
# over its sure ones, is that person (since session 56; the median of all 17 within half the side until then, which
# counted Grace Hopper out, a bust whose guessed hips and legs fall below her photograph).
FAR_REACH = 0.1
SURE = 0.3  # the original's keypoints scored at least this are compared
ORIENTATION = 0x0112  # the EXIF tag


def jpeg(picture: Image.Image, orientation: int | None = None, quality: int = 90) -> bytes:
    """The picture as a phone's JPEG (quality 90 unless given), with an EXIF orientation if given."""
    out = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    picture.save(out, format="JPEG", quality=quality, exif=exif.tobytes())
    return out.getvalue()


def backgrounds() -> dict[str, Image.Image]:
    """Grey, the mosaic of the people-free photographs (each also mirrored), and the mosaic blurred."""
    photos = []
    for name in EMPTY_PHOTOS:
        with Image.open(CHECK_SET / f"{name}_512.png") as raw:
            photo = raw.convert("RGB")
        photos += [photo, ImageOps.mirror(photo)]
    mosaic = Image.new("RGB", SIZE)
    for i, (x, y) in enumerate((x, y) for y in range(0, SIZE[1], 512) for x in range(0, SIZE[0], 512)):
        mosaic.paste(photos[i % len(photos)], (x, y))
    grey = Image.new("RGB", SIZE, (128, 128, 128))
    return {"grey": grey, "blurred": mosaic.filter(ImageFilter.GaussianBlur(8)), "mosaic": mosaic}


def far_people() -> list[tuple[str, Image.Image, tuple[float, float, float]]]:
    """The 36 pictures: (name, picture, (centre x, centre y, side) of the pasted photograph)."""
    out = []
    for back_name, back in backgrounds().items():
        for height in HEIGHTS:
            for person in SINGLE_PEOPLE:
                with Image.open(CHECK_SET / f"{person}_512.png") as raw:
                    photo = raw.convert("RGB").resize((height, height), Image.Resampling.BILINEAR)
                x, y = 2200, SIZE[1] - height - 100
                picture = back.copy()
                picture.paste(photo, (x, y))
                out.append((f"{person}@{back_name}:{height}", picture, (x + height / 2, y + height / 2, height)))
    return out


def far_reference(name: str, where: tuple[float, float, float]) -> np.ndarray:
    """What the original MoveNet Lightning answered on the check set's 512 px photograph of far picture `name`'s person,
    placed where `far_people` pasted it (`where`: centre x, y and side): (17, 3) x, y pixels and score."""
    cx, cy, side = where
    original = one_person_keypoints(name.split("@")[0])
    placed = original[:, :2] * side / 512 + (cx - side / 2, cy - side / 2)
    return np.concatenate([placed, original[:, 2:]], axis=1)


def on_far_person(points: np.ndarray, reference: np.ndarray, side: float) -> np.ndarray:
    """Which answers (keypoints (P, 17, 2) pixels) are the far person: their keypoints within `FAR_REACH` of the side
    of the reference's (`far_reference`), by the median over its sure ones; (P,) bool."""
    sure = reference[:, 2] >= SURE
    distances = np.hypot(*(np.asarray(points).reshape(-1, 17, 2)[:, sure] - reference[sure, :2]).transpose(2, 0, 1))
    return np.median(distances, axis=1) < FAR_REACH * side


def nobody() -> list[tuple[str, Image.Image]]:
    """The six large pictures of nobody."""
    out = list(backgrounds().items())
    for name in EMPTY_PHOTOS:
        with Image.open(CHECK_SET / f"{name}_512.png") as raw:
            out.append((f"{name}_3000", raw.convert("RGB").resize((3000, 3000), Image.Resampling.BICUBIC)))
    return out


def noisy(photos: dict[str, Image.Image], sigma: float, seed: int = 0) -> dict[str, Image.Image]:
    """Each photograph with Gaussian noise of `sigma` grey levels added (seeded by its name and `seed`), clipped to
    0-255."""
    if not sigma:
        return photos
    out = {}
    for name, photo in photos.items():
        rng = np.random.default_rng(sum(map(ord, name)) + 1000 * seed)
        pixels = np.asarray(photo, dtype=np.float32) + rng.normal(0.0, sigma, (photo.height, photo.width, 3))
        out[name] = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    return out
