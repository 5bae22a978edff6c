"""Augmentation keeps every keypoint on its body part; targets decode back to the labeled point."""

from __future__ import annotations

import colorsys
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from posewheel.decoding import InputSpec, decode_heatmaps, normalize
from posewheel.schema import FLIP_INDEX, KEYPOINT_INDEX, NUM_KEYPOINTS
from training.augment import AugmentParams, CropAugmenter, plain_crop
from training.targets import BACK, FRONT, UNKNOWN, facing, gaussian_heatmaps, inside_input, joint_weights

SPEC = InputSpec()
NONE = AugmentParams(flip=0.0, rotation=0.0, scale=(1.0, 1.0), translate=0.0, color_jitter=0.0, blur=0.0)
# 17 well separated colours: one per body part
PALETTE = np.array([[round(c * 255) for c in colorsys.hsv_to_rgb(i / NUM_KEYPOINTS, 1.0, 1.0)]
                    for i in range(NUM_KEYPOINTS)], dtype=np.float64)  # fmt: skip
BOX = (60.0, 30.0, 120.0, 200.0)


def painted_person(seed: int = 0) -> tuple[Image.Image, np.ndarray]:
    """A grey image with each joint a dot of its own colour; keypoints (17, 2) in image px."""
    rng = np.random.default_rng(seed)
    points: list[np.ndarray] = []
    while len(points) < NUM_KEYPOINTS:  # spread out so that dots never touch
        p = rng.uniform([BOX[0] + 10, BOX[1] + 10], [BOX[0] + BOX[2] - 10, BOX[1] + BOX[3] - 10])
        if all(np.linalg.norm(p - q) > 22 for q in points):
            points.append(p)
    image = Image.new("RGB", (256, 256), (90, 90, 90))
    draw = ImageDraw.Draw(image)
    for (x, y), colour in zip(points, PALETTE, strict=True):
        draw.ellipse([x - 7, y - 7, x + 7, y + 7], fill=tuple(int(c) for c in colour))
    return image, np.array(points)


def part_under(crop: np.ndarray, points: np.ndarray) -> list[int | None]:
    """Which joint's colour lies under each point of (K, 2) input px in crop (H, W, 3); None outside."""
    found: list[int | None] = []
    for x, y in points:
        col, row = int(np.floor(x)), int(np.floor(y))
        if not (2 <= col < crop.shape[1] - 2 and 2 <= row < crop.shape[0] - 2):
            found.append(None)
            continue
        pixel = crop[row, col].astype(np.float64)
        found.append(int(np.argmin(np.linalg.norm(PALETTE - pixel, axis=1))))
    return found


@pytest.mark.parametrize(
    "params",
    [
        pytest.param(NONE, id="none"),
        pytest.param(dataclasses.replace(NONE, rotation=40.0), id="rotation"),
        pytest.param(dataclasses.replace(NONE, scale=(0.6, 1.4)), id="scale"),
        pytest.param(dataclasses.replace(NONE, translate=0.15), id="translation"),
        pytest.param(AugmentParams(flip=0.0, color_jitter=0.0, blur=0.0), id="affine-all"),
    ],
)
def test_keypoints_stay_on_their_body_part_after_geometric_transforms(params: AugmentParams) -> None:
    torch.manual_seed(0)
    image, points = painted_person()
    augment = CropAugmenter(SPEC, params)
    checked = 0
    for _ in range(8):
        crop, moved, order = augment(image, BOX, points)
        assert order.tolist() == list(range(NUM_KEYPOINTS))  # no flip in these parameters
        found = part_under(crop.permute(1, 2, 0).numpy(), moved)
        for joint, part in enumerate(found):
            if part is not None:
                assert part == joint, f"joint {joint} landed on the dot of joint {part}"
                checked += 1
    assert checked > 8 * NUM_KEYPOINTS // 2


def test_flip_mirrors_the_image_and_swaps_left_and_right_joints() -> None:
    torch.manual_seed(0)
    image, points = painted_person(seed=3)
    crop, moved, order = CropAugmenter(SPEC, dataclasses.replace(NONE, flip=1.0))(image, BOX, points)
    found = part_under(crop.permute(1, 2, 0).numpy(), moved)
    # slot i now holds the mirror of the joint that was FLIP_INDEX[i]: the dot painted for that joint
    assert found == [FLIP_INDEX[i] for i in range(NUM_KEYPOINTS)]
    assert order.tolist() == found  # and `order` says so, for the labels that travel with the points
    _, unflipped = plain_crop(image, BOX, points, SPEC)
    left, right = KEYPOINT_INDEX["left_wrist"], KEYPOINT_INDEX["right_wrist"]
    assert moved[left, 0] == pytest.approx(SPEC.width - unflipped[right, 0], abs=0.35)
    assert moved[left, 1] == pytest.approx(unflipped[right, 1], abs=0.35)


def test_colour_jitter_and_blur_leave_keypoints_in_place() -> None:
    torch.manual_seed(0)
    image, points = painted_person()
    crop, moved, _ = CropAugmenter(SPEC, dataclasses.replace(NONE, color_jitter=0.5, blur=1.0))(image, BOX, points)
    plain, expected = plain_crop(image, BOX, points, SPEC)
    np.testing.assert_allclose(moved, expected, atol=0.35)
    assert not np.array_equal(crop.permute(1, 2, 0).numpy(), plain), "the photometric transforms changed nothing"


def test_points_that_leave_the_crop_lose_their_weight() -> None:
    points = np.array([[10.0, 10.0], [-1.0, 5.0], [SPEC.width + 0.5, 3.0], [5.0, SPEC.height]] + [[1.0, 1.0]] * 13)
    weights = joint_weights(np.array([2] * 17)) * inside_input(points, SPEC)
    assert weights[:4].tolist() == [1.0, 0.0, 0.0, 0.0]


def test_visibility_sets_joint_weights() -> None:
    assert joint_weights(np.array([0, 1, 2]), occluded_weight=0.5).tolist() == [0.0, 0.5, 1.0]


def test_target_heatmaps_decode_back_to_the_labeled_point() -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform([4, 4], [SPEC.width - 4, SPEC.height - 4], size=(NUM_KEYPOINTS, 2))
    weights = np.ones(NUM_KEYPOINTS, np.float32)
    weights[3] = 0.0
    maps = gaussian_heatmaps(points, weights, SPEC, sigma=1.5)
    assert maps.shape == (NUM_KEYPOINTS, *SPEC.heatmap_size)
    assert maps[3].max() == 0.0, "an unweighted joint must have an empty target"
    coords, _ = decode_heatmaps(maps[None])
    error = np.linalg.norm(coords[0] * SPEC.stride - points, axis=1)
    # quarter-cell decoding: at most a quarter of a 4-pixel cell per axis
    assert np.delete(error, 3).max() <= 0.25 * SPEC.stride * np.sqrt(2) + 1e-6


def test_normalize_puts_channels_first_as_x_over_255_less_mean_over_std() -> None:
    spec = dataclasses.replace(SPEC, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    crops = np.random.default_rng(0).integers(0, 256, size=(3, 6, 8, 3), dtype=np.uint8)
    out = normalize(crops, spec)
    assert out.shape == (3, 3, 6, 8) and out.dtype == np.float32 and out.flags.c_contiguous
    for c in range(3):
        expected = (crops[..., c] / 255.0 - spec.mean[c]) / spec.std[c]
        np.testing.assert_allclose(out[:, c], expected, atol=1e-6)
    assert normalize(crops[:0], spec).shape == (0, 3, 6, 8)


def test_a_flipped_crop_carries_each_joints_visibility_to_its_new_slot(tmp_path: Path) -> None:
    from training.config import TrainConfig
    from training.data import Person, PersonCrops

    image, points = painted_person(seed=3)
    image.save(tmp_path / "person.png")
    keypoints = np.concatenate([points, np.full((NUM_KEYPOINTS, 1), 2.0)], axis=1)
    left, right = KEYPOINT_INDEX["left_ear"], KEYPOINT_INDEX["right_ear"]
    keypoints[left, 2] = 0.0  # the left ear is not labeled: after a flip, the right-ear slot has no target
    person = Person(tmp_path / "person.png", image.width, image.height, BOX, keypoints, source=0)
    config = TrainConfig(flip=1.0, rotation=0.0, scale=(1.0, 1.0), translate=0.0, whole_image_fraction=0.0)
    sample = PersonCrops([person], config, train=True)[0]
    assert sample["weights"][right] == 0.0 and sample["weights"][left] == 1.0
    assert sample["heatmaps"][right].max() == 0.0 and sample["heatmaps"][left].max() > 0.9


def test_a_portrait_crop_keeps_the_top_of_the_person_and_drops_the_joints_below_it(tmp_path: Path) -> None:
    from training.config import TrainConfig
    from training.data import Person, PersonCrops

    image, points = painted_person(seed=5)
    image.save(tmp_path / "person.png")
    keypoints = np.concatenate([points, np.full((NUM_KEYPOINTS, 1), 2.0)], axis=1)
    person = Person(tmp_path / "person.png", image.width, image.height, BOX, keypoints, source=0)
    fixed: dict[str, Any] = dict(dataclasses.asdict(NONE), whole_image_fraction=0.0)  # nothing else moves the crop
    whole = PersonCrops([person], TrainConfig(**fixed, upper_fraction=0.0), train=True)[0]
    portrait = PersonCrops([person], TrainConfig(**fixed, upper_fraction=1.0, upper_keep=(0.4, 0.4)), train=True)[0]

    assert whole["weights"].min() == 1.0, "a whole-body crop keeps every joint"
    top = points[:, 1] < BOX[1] + 0.35 * BOX[3]  # well inside the kept 40% of the box's height
    bottom = points[:, 1] > BOX[1] + 0.6 * BOX[3]  # below the square window cut around it
    assert top.any() and bottom.any()
    assert portrait["weights"][top].min() == 1.0 and portrait["weights"][bottom].max() == 0.0
    # what is kept is larger in the crop (zoomed in) and still lies on its own painted dot
    spec = TrainConfig(**fixed).input_spec
    crop = ((portrait["image"].numpy().transpose(1, 2, 0) * np.array(spec.std) + np.array(spec.mean)) * 255).round()
    centres = (_peaks(portrait["heatmaps"]) + 0.5) * spec.stride
    assert part_under(crop, centres[top]) == np.flatnonzero(top).tolist()
    span = (
        np.ptp(_peaks(portrait["heatmaps"])[top], axis=0).max() / np.ptp(_peaks(whole["heatmaps"])[top], axis=0).max()
    )
    assert span > 1.5, f"the portrait crop should zoom in on the top of the person, spans ratio {span:.2f}"


def _peaks(heatmaps: torch.Tensor) -> np.ndarray:
    """(K, 2) x, y heatmap cell of each map's maximum."""
    return np.array([np.unravel_index(m.argmax(), m.shape)[::-1] for m in heatmaps.numpy()], dtype=np.float64)


def test_portrait_settings_out_of_range_are_refused() -> None:
    from training.config import ConfigError, TrainConfig

    with pytest.raises(ConfigError, match="upper_keep"):
        TrainConfig(upper_keep=(0.7, 0.3)).check()
    with pytest.raises(ConfigError, match="upper_fraction"):
        TrainConfig(upper_fraction=1.5).check()


def _torso(front: bool, angle_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (17, 2) of an upright torso turned by `angle_deg` in the image plane, all labeled."""
    side = 1.0 if front else -1.0  # a front-facing person's left is on the image's right
    points = np.zeros((NUM_KEYPOINTS, 2))
    for name, (x, y) in {"left_shoulder": (side * 20, -50), "right_shoulder": (-side * 20, -50),
                         "left_hip": (side * 12, 0), "right_hip": (-side * 12, 0)}.items():  # fmt: skip
        points[KEYPOINT_INDEX[name]] = (x, y)
    a = np.radians(angle_deg)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return points @ rotation.T + 100.0, np.full(NUM_KEYPOINTS, 2.0)


@pytest.mark.parametrize("angle", [0.0, 35.0, 90.0, 180.0, -120.0])
def test_facing_reads_the_torso_whatever_its_rotation(angle: float) -> None:
    assert facing(*_torso(front=True, angle_deg=angle)) == FRONT
    assert facing(*_torso(front=False, angle_deg=angle)) == BACK


def test_a_mirrored_person_still_faces_the_same_way() -> None:
    points, visibility = _torso(front=True, angle_deg=20.0)
    mirrored = points.copy()
    mirrored[:, 0] = 300.0 - mirrored[:, 0]
    assert facing(mirrored[list(FLIP_INDEX)], visibility) == FRONT  # flip + left/right swap, as augment does


def test_facing_is_unknown_without_the_torso_or_edge_on() -> None:
    points, visibility = _torso(front=True)
    missing = visibility.copy()
    missing[KEYPOINT_INDEX["right_hip"]] = 0
    assert facing(points, missing) == UNKNOWN
    edge_on = points.copy()
    edge_on[:, 0] = 100.0  # seen from the side: left and right on one vertical line
    assert facing(edge_on, visibility) == UNKNOWN


def test_facing_from_keypoints_agrees_with_the_generators_truth() -> None:
    from posewheel.synth.scene import DOMAINS, render_sample

    checked = 0
    for domain in ("studio", "street"):
        for index in range(40):
            sample = render_sample(DOMAINS[domain], 7, index, size=128)
            found = facing(sample.projected, np.full(NUM_KEYPOINTS, 2.0))
            if found != UNKNOWN:
                assert found == (FRONT if sample.facing == "front" else BACK), (domain, index)
                checked += 1
    assert checked >= 60


def test_the_network_swaps_pairs_only_for_back_facing_persons() -> None:
    from training.model import to_person_order

    canonical = torch.arange(2 * NUM_KEYPOINTS, dtype=torch.float32).reshape(2, NUM_KEYPOINTS)
    flips = torch.tensor(FLIP_INDEX)
    out = to_person_order(canonical, torch.tensor([2.5, -0.3]), flips)
    assert torch.equal(out[0], canonical[0])
    assert torch.equal(out[1], canonical[1, flips])
    assert torch.equal(to_person_order(out, torch.tensor([2.5, -0.3]), flips), canonical)  # its own inverse


def test_only_a_person_alone_in_the_picture_is_ever_cropped_from_the_whole_image(tmp_path: Path) -> None:
    """In a group photo the whole image does not say which person is meant: its persons keep their boxes."""
    from posewheel import dataset as coco
    from posewheel.decoding import crop_box, whole_image_box
    from training.config import TrainConfig
    from training.data import PersonCrops, persons

    image, points = painted_person(seed=4)
    (tmp_path / "images").mkdir()
    image.save(tmp_path / "images" / "group.png")
    image.save(tmp_path / "images" / "single.png")
    keypoints = np.concatenate([points, np.full((NUM_KEYPOINTS, 1), 2.0)], axis=1)
    unlabeled = np.zeros((NUM_KEYPOINTS, 3))  # a person in the picture with no joint labeled still counts
    records = [coco.ImageRecord(1, "group.png", image.width, image.height),
               coco.ImageRecord(2, "single.png", image.width, image.height)]  # fmt: skip
    annotations = [coco.PersonAnnotation(1, 1, keypoints, BOX), coco.PersonAnnotation(2, 1, unlabeled, BOX),
                   coco.PersonAnnotation(3, 2, keypoints, BOX)]  # fmt: skip
    found = persons(coco.Dataset(records, annotations, root=tmp_path), source=0)
    assert [(p.image_path.name, p.alone) for p in found] == [("group.png", False), ("single.png", True)]

    config = TrainConfig(whole_image_fraction=1.0)
    crops = PersonCrops(found, config, train=True)
    spec = config.input_spec
    whole = crop_box(whole_image_box(image.width, image.height, spec), spec)
    assert np.allclose(crops[0]["window"].numpy(), crop_box(BOX, spec)), "a group photo's person lost its box"
    assert np.allclose(crops[1]["window"].numpy(), whole), "a person alone was not cropped from the whole image"


def test_a_crowded_person_is_trained_as_the_server_reads_them_alone(tmp_path: Path) -> None:
    """`train.alone_fraction`: a person whose crop window holds another labeled person's box is shown blanked
    outside their own box, as `posewheel.detection.read_alone` shows the served network; a person apart is not
    crowded and never blanked."""
    from posewheel import dataset as coco
    from posewheel.decoding import crop_box, crop_image
    from posewheel.detection import read_alone
    from training.config import TrainConfig
    from training.data import PersonCrops, persons

    rng = np.random.default_rng(0)
    coarse = Image.fromarray(rng.integers(0, 256, (10, 35, 3), dtype=np.uint8))
    image = coarse.resize((700, 200), Image.Resampling.BILINEAR)  # smooth: two resamplings of it agree
    (tmp_path / "images").mkdir()
    image.save(tmp_path / "images" / "three.png")
    boxes = [(40.0, 20.0, 100.0, 170.0), (150.0, 20.0, 100.0, 170.0), (560.0, 20.0, 100.0, 170.0)]  # the third apart
    annotations = []
    for n, (x, y, w, h) in enumerate(boxes, start=1):
        points = np.stack([rng.uniform(x, x + w, NUM_KEYPOINTS), rng.uniform(y, y + h, NUM_KEYPOINTS)], axis=1)
        annotations.append(
            coco.PersonAnnotation(n, 1, np.concatenate([points, np.full((NUM_KEYPOINTS, 1), 2.0)], 1), (x, y, w, h))
        )
    ds = coco.Dataset([coco.ImageRecord(1, "three.png", 700, 200)], annotations, root=tmp_path)
    still = {"flip": 0.0, "rotation": 0.0, "scale": (1.0, 1.0), "translate": 0.0, "color_jitter": 0.0, "blur": 0.0}
    config = TrainConfig(alone_fraction=1.0, whole_image_fraction=0.0, **still)  # type: ignore[arg-type]
    spec = config.input_spec
    found = persons(ds, source=0, spec=spec)
    assert [p.crowded for p in found] == [True, True, False]
    assert not any(p.crowded for p in persons(ds, source=0)), "without the input's geometry nobody is crowded"

    windows = [crop_box(b, spec) for b in boxes]
    served, alone = read_alone(
        normalize(np.stack([crop_image(image, w, spec) for w in windows]), spec), np.array(boxes), windows, spec
    )
    assert alone.tolist() == [True, True, False]
    trained = np.stack([PersonCrops(found, config, train=True)[i]["image"].numpy() for i in range(3)])
    as_cropped = np.stack(
        [
            PersonCrops(found, dataclasses.replace(config, alone_fraction=0.0), train=True)[i]["image"].numpy()
            for i in range(3)
        ]
    )
    for i in range(3):
        blank = np.all(np.abs(served[i]) < 1e-6, axis=0)  # the input's mean colour, normalised
        near = np.abs(trained[i] - served[i]).max(axis=0) < 0.05
        assert near.mean() > 0.97, f"person {i}: the trained crop is not the served one ({near.mean():.3f})"
        if i < 2:
            assert blank.mean() > 0.2 and np.abs(trained[i][:, blank]).max() < 0.05  # the neighbour is gone
            assert np.abs(as_cropped[i][:, blank]).mean() > 0.2  # and was there before
        else:
            assert not blank.any() and np.allclose(trained[i], as_cropped[i])
