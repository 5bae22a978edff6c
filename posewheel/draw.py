"""Draw skeletons on images (PIL only): for `posewheel show`, training previews and the server's /v1/render.

The person's left side is orange, the right side blue, the face and centre green. Visible joints
are filled discs, occluded (or low-score) joints hollow rings, unlabeled joints are not drawn.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from posewheel.schema import KEYPOINT_NAMES, NUM_KEYPOINTS, SKELETON, V_OCCLUDED, V_VISIBLE

LEFT_COLOUR = (255, 140, 0)
RIGHT_COLOUR = (0, 150, 255)
CENTRE_COLOUR = (40, 220, 60)
BOX_COLOUR = (255, 255, 0)
LOW_SCORE = 0.3  # a predicted joint scored under this is drawn hollow, and a bone to it thin
# Track colours (Kelly's colours of maximum contrast), a person's box and id keep theirs through a video.
TRACK_COLOURS = (
    (255, 179, 0), (128, 62, 117), (255, 104, 0), (166, 189, 215), (193, 0, 32), (206, 162, 98),
    (129, 112, 102), (0, 125, 52), (246, 118, 142), (0, 83, 138), (255, 122, 92), (83, 55, 122),
)  # fmt: skip


def track_colour(track_id: int) -> tuple[int, int, int]:
    """The colour of track `track_id` (ids from 1; they cycle after 12)."""
    return TRACK_COLOURS[(track_id - 1) % len(TRACK_COLOURS)]


@functools.lru_cache(maxsize=8)
def _label_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's own font at `size` px, loaded once per size (a video draws thousands of labels)."""
    return ImageFont.load_default(size=size)


def _side_colour(joint: int) -> tuple[int, int, int]:
    name = KEYPOINT_NAMES[joint]
    if name.startswith("left_"):
        return LEFT_COLOUR
    if name.startswith("right_"):
        return RIGHT_COLOUR
    return CENTRE_COLOUR


_JOINT_COLOURS = tuple(_side_colour(j) for j in range(NUM_KEYPOINTS))
_EDGE_COLOURS = tuple(
    _JOINT_COLOURS[a] if _JOINT_COLOURS[a] == _JOINT_COLOURS[b] else CENTRE_COLOUR for a, b in SKELETON
)


def page_style() -> dict[str, object]:
    """The drawing rules as the demo page reads them (CSS colours), so the page draws as /v1/render does.

    joint: each keypoint's colour by side (left, right, centre); a bone takes its joints' colour, or centre's
    where their sides differ; box: the person box; tracks: a tracked person's box by track id (`track_colour`);
    low_score: under it a joint is hollow and its bones thin.
    """

    def css(rgb: tuple[int, int, int]) -> str:
        return "#{:02x}{:02x}{:02x}".format(*rgb)

    return {
        "joint": [css(c) for c in _JOINT_COLOURS],
        "left": css(LEFT_COLOUR),
        "right": css(RIGHT_COLOUR),
        "centre": css(CENTRE_COLOUR),
        "box": css(BOX_COLOUR),
        "tracks": [css(c) for c in TRACK_COLOURS],
        "low_score": LOW_SCORE,
    }


def _flags(keypoints: np.ndarray, scores: npt.ArrayLike | None, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, 17, 2) points and (N, 17) flags (0 skip, 1 hollow, 2 filled) from either input form."""
    if keypoints.shape[-1] == 3:
        return keypoints[..., :2], keypoints[..., 2].round().astype(np.int64)
    if scores is None:
        return keypoints, np.full(keypoints.shape[:-1], V_VISIBLE, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64).reshape(keypoints.shape[:-1])
    return keypoints, np.where(scores >= threshold, V_VISIBLE, V_OCCLUDED)


def draw_poses(
    image: Image.Image,
    keypoints: npt.ArrayLike,
    scores: npt.ArrayLike | None = None,
    boxes: npt.ArrayLike | None = None,
    threshold: float = LOW_SCORE,
    radius: float | None = None,
    colors: Sequence[tuple[int, int, int]] | None = None,
    track_ids: Sequence[int] | None = None,
) -> Image.Image:
    """A copy of `image` (RGB) with each person's skeleton drawn.

    keypoints: (N, 17, 3) pixels with v in {0,1,2} (labels), or (N, 17, 2) pixels with `scores`
    (N, 17) in [0, 1] (predictions: below `threshold` drawn hollow); a single (17, k) person is
    accepted. boxes: optional (N, 4) [x, y, w, h] pixels. radius: joint radius in pixels (default
    from the image size). colors: one RGB per person instead of the left/right colours (e.g. truth
    green, prediction red). track_ids: one per box (video tracks): each box is drawn in its track's
    colour, its id at the top-left corner. Coordinates are continuous pixels (pixel i covers [i, i+1)).
    """
    points = np.asarray(keypoints, dtype=np.float64)
    if points.ndim == 2:
        points = points[None]
    if points.ndim != 3 or points.shape[1] != NUM_KEYPOINTS or points.shape[2] not in (2, 3):
        raise ValueError(f"keypoints must be (N, 17, 3) or (N, 17, 2), got shape {points.shape}")
    xy, flags = _flags(points, scores, threshold)
    out = image.convert("RGB") if image.mode != "RGB" else image.copy()
    draw = ImageDraw.Draw(out)
    r = radius if radius is not None else max(1.5, min(out.size) / 100)
    width = max(1, round(r * 0.7))
    if boxes is not None:
        box_array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if track_ids is not None and len(track_ids) != len(box_array):
            raise ValueError(f"track_ids has {len(track_ids)} entries for {len(box_array)} boxes")
        for n, (x, y, w, h) in enumerate(box_array):
            if track_ids is None:
                draw.rectangle((x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5), outline=BOX_COLOUR, width=1)
                continue
            track_box = track_colour(int(track_ids[n]))
            draw.rectangle((x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5), outline=track_box, width=width)
            label = f"#{int(track_ids[n])}"
            font = _label_font(max(10, round(r * 4)))
            left, top, right, bottom = draw.textbbox((x, y), label, font=font)
            draw.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill=track_box)
            draw.text((x, y), label, fill=(0, 0, 0), font=font)
    if colors is not None and len(colors) != len(xy):
        raise ValueError(f"colors has {len(colors)} entries for {len(xy)} persons")
    pix = xy - 0.5  # PIL puts pixel centres at integers
    for n, (person, flag) in enumerate(zip(pix, flags, strict=True)):
        edge_colours = _EDGE_COLOURS if colors is None else (tuple(colors[n]),) * len(SKELETON)
        joint_colours = _JOINT_COLOURS if colors is None else (tuple(colors[n]),) * NUM_KEYPOINTS
        for (a, b), colour in zip(SKELETON, edge_colours, strict=True):
            if flag[a] > 0 and flag[b] > 0:
                thin = flag[a] == V_OCCLUDED or flag[b] == V_OCCLUDED
                draw.line([tuple(person[a]), tuple(person[b])], fill=colour, width=1 if thin else width)
        for j in range(NUM_KEYPOINTS):
            if flag[j] <= 0:
                continue
            x, y = person[j]
            disc = (x - r, y - r, x + r, y + r)
            if flag[j] == V_VISIBLE:
                draw.ellipse(disc, fill=joint_colours[j], outline=(0, 0, 0))
            else:
                draw.ellipse(disc, outline=joint_colours[j], width=max(1, round(r * 0.4)))
    return out


def image_grid(images: Sequence[Image.Image], columns: int, cell: int) -> Image.Image:
    """Tile images (each resized to `cell` x `cell` px, aspect kept, letterboxed) in `columns` columns."""
    if not images:
        raise ValueError("image_grid needs at least one image")
    rows = (len(images) + columns - 1) // columns
    grid = Image.new("RGB", (columns * cell, rows * cell), (24, 24, 24))
    for n, img in enumerate(images):
        scale = cell / max(img.size)
        tile = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
        x, y = (n % columns) * cell, (n // columns) * cell
        grid.paste(tile, (x + (cell - tile.width) // 2, y + (cell - tile.height) // 2))
    return grid
