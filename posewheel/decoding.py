"""Top-down geometry and heatmap decoding, shared by training, evaluation and serving.

One implementation so that evaluation and the server cannot disagree. NumPy and Pillow only.
Coordinates are continuous pixels: pixel (i, j) covers [i, i+1) x [j, j+1), its centre at +0.5.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from posewheel.picture import Picture, Pixels

Box = tuple[float, float, float, float]  # x, y, w, h in pixels
# `crop_images` shrinks a window this many times the input's size or more by whole blocks first (since session 54).
REDUCE_FROM = 2
# The graph outputs each decoding reads (a model card's `output.kind` names one of these).
OUTPUT_NAMES: dict[str, tuple[str, ...]] = {
    "heatmaps": ("heatmaps",),
    "movenet": ("heatmaps", "centers", "regress", "offsets"),
}


@dataclass(frozen=True)
class InputSpec:
    """The network's input: size in pixels, RGB normalisation, heatmap stride."""

    width: int = 96
    height: int = 128
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    stride: int = 4
    padding: float = 1.25  # the crop is the person box grown by this factor
    whole_image_padding: float | None = None  # when the whole image is the person; None: `padding`

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(height, width) of the output heatmaps."""
        return self.height // self.stride, self.width // self.stride


def crop_box(box: Box, spec: InputSpec) -> Box:
    """The crop window for a person box: same centre, grown by `spec.padding`, input aspect ratio."""
    x, y, w, h = box
    cx, cy = x + w / 2.0, y + h / 2.0
    aspect = spec.width / spec.height
    w, h = max(w, 1.0), max(h, 1.0)
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    w, h = w * spec.padding, h * spec.padding
    return (cx - w / 2.0, cy - h / 2.0, w, h)


def whole_image_box(width: float, height: float, spec: InputSpec) -> Box:
    """The person box to use when the whole image is the person (a request without boxes).

    Its crop window (`crop_box`) is the image, fitted to the input's aspect ratio, grown by
    `spec.whole_image_padding` instead of `spec.padding`; with no whole_image_padding, the image itself.
    """
    factor = (spec.whole_image_padding or spec.padding) / spec.padding
    w, h = width * factor, height * factor
    return ((width - w) / 2.0, (height - h) / 2.0, w, h)


def crop_image(image: Pixels, window: Box, spec: InputSpec) -> np.ndarray:
    """Cut `window` out of an RGB image and resize it to the input size; (H, W, 3) uint8 (`crop_images`)."""
    return crop_images(image, [window], spec)[0]


def crop_images(image: Pixels, windows: Sequence[Box], spec: InputSpec) -> np.ndarray:
    """Cut each window out of an RGB image and resize it to the input size; (N, H, W, 3) uint8.

    Parts of a window outside the image are black. A window at least `REDUCE_FROM` times the input's size is cut
    from the picture shrunk by the whole number of times it holds the input (`shrink_block`), each pixel the mean of
    a block of the picture's (`Image.reduce`, exact in these coordinates), then resized as any other: Pillow's
    `transform` reads the 2 x 2 pixels nearest each input pixel, so from a window many times the input it reads a
    few of the picture's pixels and a photograph's noise passes whole (docs/detector.md: barely visible noise cost
    a turned picture's people, benchmarks/photo_noise.py). The blocks lie on one grid from the picture's corner, so
    a window's pixels are the same cut alone or among others; where the windows of one block cover more than the
    picture, it is shrunk once.
    A `Picture` held small gives each window that holds the input at least `factor` times from its small picture,
    whose pixels are the picture's blocks already (the window and its block `factor` times smaller), and the others
    from the picture decoded whole (`Picture.whole`).
    """
    if not isinstance(image, Picture):
        return _cut(image, windows, spec)
    out = np.empty((len(windows), spec.height, spec.width, 3), dtype=np.uint8)
    k = image.factor
    small = [min(w / spec.width, h / spec.height) >= k for _, _, w, h in windows]
    rows = np.array(small, dtype=bool)
    if rows.any():
        shrunk = [(x / k, y / k, w / k, h / k) for (x, y, w, h), s in zip(windows, small, strict=True) if s]
        out[rows] = _cut(image.small, shrunk, spec)
    if not rows.all():
        out[~rows] = _cut(image.whole(), [w for w, s in zip(windows, small, strict=True) if not s], spec)
    return out


def _cut(image: Image.Image, windows: Sequence[Box], spec: InputSpec) -> np.ndarray:
    """`crop_images` from a Pillow image: (N, H, W, 3) uint8."""
    out = np.empty((len(windows), spec.height, spec.width, 3), dtype=np.uint8)
    blocks = [shrink_block(window, spec) for window in windows]
    covered: dict[int, float] = {}
    for window, block in zip(windows, blocks, strict=True):
        covered[block] = covered.get(block, 0.0) + _area_inside(window, image.width, image.height)
    shrunk = {b: image.reduce(b) for b, area in covered.items() if b > 1 and area > image.width * image.height}
    for i, (window, block) in enumerate(zip(windows, blocks, strict=True)):
        x, y, w, h = window
        source = image
        if block > 1:
            x0, y0 = max(math.floor(x / block), 0) * block, max(math.floor(y / block), 0) * block
            x1, y1 = (
                min(math.ceil((x + w) / block) * block, image.width),
                min(math.ceil((y + h) / block) * block, image.height),
            )
            if x1 <= x0 or y1 <= y0:
                out[i] = 0
                continue
            if block in shrunk:
                x0 = y0 = 0
                source = shrunk[block]
            else:
                source = image.reduce(block, box=(x0, y0, x1, y1))
            x, y, w, h = (x - x0) / block, (y - y0) / block, w / block, h / block
        crop = source.transform(
            (spec.width, spec.height),
            Image.Transform.EXTENT,
            data=(x, y, x + w, y + h),
            resample=Image.Resampling.BILINEAR,
        )
        out[i] = np.asarray(crop, dtype=np.uint8)
    return out


def shrink_block(window: Box, spec: InputSpec) -> int:
    """The block `crop_images` shrinks the picture by before cutting `window`: how many whole times the window holds
    the input, from `REDUCE_FROM` on; 1 below it."""
    times = int(min(window[2] / spec.width, window[3] / spec.height))
    return times if times >= REDUCE_FROM else 1


def _area_inside(window: Box, width: int, height: int) -> float:
    x, y, w, h = window
    return max(0.0, min(x + w, width) - max(x, 0.0)) * max(0.0, min(y + h, height) - max(y, 0.0))


def normalize(crops: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(N, H, W, 3) uint8 crops -> (N, 3, H, W) float32 network input: (x / 255 - mean) / std.

    One multiply and one subtract per channel, written straight into the channel-first array (no
    float copies of the whole batch): 7x faster than the plain expression, equal to it within float32 rounding.
    """
    n, h, w, _ = crops.shape
    std = np.asarray(spec.std, np.float32)
    scale = np.float32(1.0) / (np.float32(255.0) * std)
    shift = np.asarray(spec.mean, np.float32) / std
    out = np.empty((n, 3, h, w), np.float32)
    for c in range(3):
        np.multiply(crops[..., c], scale[c], out=out[:, c], dtype=np.float32)
        out[:, c] -= shift[c]
    return out


def image_to_input(points: np.ndarray, window: Box, spec: InputSpec) -> np.ndarray:
    """Map (..., 2) image pixels into input pixels of the crop `window`."""
    x, y, w, h = window
    out = np.empty_like(points, dtype=np.float64)
    out[..., 0] = (points[..., 0] - x) * (spec.width / w)
    out[..., 1] = (points[..., 1] - y) * (spec.height / h)
    return out


def input_to_image(points: np.ndarray, window: Box, spec: InputSpec) -> np.ndarray:
    """Map (..., 2) input pixels of the crop `window` back to image pixels."""
    x, y, w, h = window
    out = np.empty_like(points, dtype=np.float64)
    out[..., 0] = points[..., 0] * (w / spec.width) + x
    out[..., 1] = points[..., 1] * (h / spec.height) + y
    return out


def decode_heatmaps(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax with quarter-pixel refinement towards the higher neighbour (SimpleBaseline).

    heatmaps: (N, K, h, w) float32. Returns coords (N, K, 2) in heatmap pixels (continuous, a
    peak at cell (i, j) decodes to (j + 0.5, i + 0.5)) and scores (N, K), the peak values.
    """
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, h * w)
    idx = flat.argmax(axis=2)
    scores = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    ys, xs = np.divmod(idx, w)
    coords = np.stack([xs, ys], axis=-1).astype(np.float64)
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    left = heatmaps[ni, ki, ys, np.clip(xs - 1, 0, w - 1)]
    right = heatmaps[ni, ki, ys, np.clip(xs + 1, 0, w - 1)]
    up = heatmaps[ni, ki, np.clip(ys - 1, 0, h - 1), xs]
    down = heatmaps[ni, ki, np.clip(ys + 1, 0, h - 1), xs]
    inner_x = (xs > 0) & (xs < w - 1)
    inner_y = (ys > 0) & (ys < h - 1)
    coords[..., 0] += np.where(inner_x, 0.25 * np.sign(right - left), 0.0)
    coords[..., 1] += np.where(inner_y, 0.25 * np.sign(down - up), 0.0)
    return coords + 0.5, scores.astype(np.float64)


def decode_to_image(heatmaps: np.ndarray, windows: Sequence[Box], spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """Decode heatmaps of N crops to image pixels: keypoints (N, K, 2) and scores (N, K) in [0, 1]."""
    return decode_outputs({"heatmaps": heatmaps}, windows, spec, "heatmaps")


def decode_outputs(
    outputs: Mapping[str, np.ndarray], windows: Sequence[Box], spec: InputSpec, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """The network outputs of N crops (by name, see OUTPUT_NAMES) to keypoints (N, K, 2) in image pixels
    and scores (N, K) in [0, 1]; `kind` is the model card's `output.kind`."""
    if kind == "heatmaps":
        coords, scores = decode_heatmaps(outputs["heatmaps"])
        coords = coords * spec.stride  # heatmap -> input pixels
    elif kind == "movenet":
        maps = [outputs[name] for name in OUTPUT_NAMES["movenet"]]
        coords, scores = decode_movenet(maps[0], maps[1], maps[2], maps[3], spec.stride)
    else:
        raise ValueError(f"unknown output kind {kind!r}; expected one of {sorted(OUTPUT_NAMES)}")
    if not len(windows):
        return coords.reshape(0, coords.shape[1], 2), scores
    points = np.stack([input_to_image(coords[i], windows[i], spec) for i in range(len(windows))])
    return points, np.clip(scores, 0.0, 1.0)


def pose_score(scores: np.ndarray) -> np.ndarray:
    """One confidence per person from its keypoint scores (N, K): the mean; (N,)."""
    return scores.mean(axis=-1)


def input_to_heatmap_cells(points: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Input pixels (..., 2) -> heatmap cell coordinates (cell centres at integers): p / stride - 0.5.

    Training targets put their Gaussian peaks here, the inverse of `decode_heatmaps`.
    """
    return points / spec.stride - 0.5


# ---- MoveNet (CenterNet-style single pose): heatmaps + centres + regression + offsets ---------------------------

MOVENET_DISTANCE_BIAS = 1.8  # cells; the original graph's constant in both distance weightings


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w]
    return ys.astype(np.float32), xs.astype(np.float32)


def decode_movenet(
    heatmaps: np.ndarray, centers: np.ndarray, regress: np.ndarray, offsets: np.ndarray, stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """MoveNet SinglePose's own decoding, as its TF.js graph does it, batched.

    heatmaps (N, K, h, w) and centers (N, 1, h, w) after their sigmoids; regress and offsets
    (N, 2K, h, w), channel 2k the y and 2k+1 the x of joint k, in cells. The person is the centre
    peak weighted towards the middle of the input; each joint is the heatmap peak weighted by
    closeness to where that centre regresses it, plus its sub-cell offset. Returns keypoints
    (N, K, 2) as (x, y) input pixels and scores (N, K), the heatmap value at each joint's cell.
    """
    n, k, h, w = heatmaps.shape
    ys, xs = _grid(h, w)
    centre_weight = 1.0 / (np.sqrt((ys - h / 2) ** 2 + (xs - w / 2) ** 2) + MOVENET_DISTANCE_BIAS)
    flat = (centers[:, 0] * centre_weight).reshape(n, h * w)
    cy, cx = np.divmod(flat.argmax(axis=1), w)  # (N,)
    rows = np.arange(n)
    reg = regress[rows, :, cy, cx].reshape(n, k, 2)  # (N, K, [dy, dx])
    ry = cy[:, None] + reg[..., 0]
    rx = cx[:, None] + reg[..., 1]
    distance = np.sqrt((ys - ry[..., None, None]) ** 2 + (xs - rx[..., None, None]) ** 2) + MOVENET_DISTANCE_BIAS
    peak = (heatmaps / distance).reshape(n, k, h * w).argmax(axis=2)
    ky, kx = np.divmod(peak, w)  # (N, K)
    ni, ki = np.meshgrid(rows, np.arange(k), indexing="ij")
    off = offsets.reshape(n, k, 2, h, w)[ni, ki, :, ky, kx]  # (N, K, [dy, dx])
    points = np.stack([kx + off[..., 1], ky + off[..., 0]], axis=-1).astype(np.float64) * stride
    return points, heatmaps[ni, ki, ky, kx].astype(np.float64)
