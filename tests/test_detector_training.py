"""The person detector learns in the project: targets its decoding reads back, a fine-tune that lowers its loss,
and a fine-tuned detector that exports to ONNX and serves from the artifact like the pretrained one.

The pretrained weights come from the set-up step (`posewheel pretrained fetch`), never at test time.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posewheel.centernet import decode_centernet
from posewheel.decoding import InputSpec
from posewheel.multipose import OUTPUT_NAMES, decode_multipose
from posewheel.schema import KEYPOINT_INDEX
from training.config import TrainConfig
from training.data import DetectorDataModule, SceneImages, scenes
from training.lightning_module import DetectorModel, relative_adamw
from training.targets import centernet_targets, multipose_targets

SPEC = InputSpec(width=256, height=256, mean=(0.5,) * 3, std=(0.5,) * 3, stride=4)


@pytest.fixture(scope="module")
def group_scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve street images of 0 to 4 persons (empty ones included)."""
    from posewheel.synth import generate

    folder = tmp_path_factory.mktemp("groups") / "street_groups"
    generate("street", 12, 5, folder, persons=(0, 4), workers=1)
    return folder


def detector_config(kind: str = "movenet-multipose", **overrides: object) -> TrainConfig:
    return TrainConfig.for_detector({}, kind=kind, num_workers=0, wandb=False, **overrides)


def maps_from_targets(t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The six maps a perfect detector would output for targets `t` (one image, channels first)."""
    k, h, w = t["heatmaps"].shape
    maps = {"heatmaps": t["heatmaps"], "centers": t["centers"]}
    maps.update({name: np.zeros((c, h, w), np.float32) for name, c in (("regress", 2 * k), ("offsets", 2 * k))})
    maps.update({name: np.zeros((2, h, w), np.float32) for name in ("box_scale", "box_offset")})
    for p in np.flatnonzero(t["person_mask"]):
        cx, cy = t["center_cell"][p]
        maps["regress"][:, cy, cx] = t["regress"][p].reshape(-1)
        maps["box_scale"][:, cy, cx] = t["box_scale"][p]
        maps["box_offset"][:, cy, cx] = t["box_offset"][p]
        for j, (jx, jy) in enumerate(t["joint_cells"][p]):
            maps["offsets"][2 * j : 2 * j + 2, jy, jx] = t["offsets"][p, j]
    return maps


def test_detector_decoding_reads_back_its_training_targets() -> None:
    """Three persons' targets drawn as perfect maps decode (posewheel/multipose.py) to their boxes and joints."""
    rng = np.random.default_rng(0)
    boxes = np.array([[20.0, 30.0, 60.0, 150.0], [110.0, 60.0, 50.0, 120.0], [180.0, 20.0, 55.0, 200.0]])
    # joints at least a cell inside their box: the graph searches a person's joints among the cells inside it
    points = np.stack([rng.uniform(b[:2] + 4.5, b[:2] + b[2:] - 4.5, size=(17, 2)) for b in boxes])
    t = multipose_targets(points, np.ones((3, 17), np.float32), boxes, SPEC, sigma=1.5)
    found, scores, keypoints, keypoint_scores = decode_multipose(*(maps_from_targets(t)[k] for k in OUTPUT_NAMES))
    assert len(found) == 3
    order = np.argsort(found[:, 0])  # decode ranks by score; the persons stand left to right
    np.testing.assert_allclose(found[order], boxes, atol=1e-4)
    np.testing.assert_allclose(keypoints[order], points, atol=1e-4)
    assert keypoint_scores.min() > 0.9 and scores.min() > 0.9


def test_an_image_without_persons_is_a_negative() -> None:
    t = multipose_targets(np.zeros((0, 17, 2)), np.zeros((0, 17)), np.zeros((0, 4)), SPEC, sigma=1.5)
    assert not t["heatmaps"].any() and not t["centers"].any() and not t["person_mask"].any()
    assert len(decode_multipose(*(maps_from_targets(t)[k] for k in OUTPUT_NAMES))[0]) == 0


def test_a_flipped_scene_keeps_each_persons_left_and_right(group_scenes: Path) -> None:
    """Mirrored, the person's left shoulder is drawn where the right one was seen, so the right-shoulder slot
    holds the mirror of the left shoulder (and the box mirrors)."""
    from posewheel import dataset as coco

    items = [s for s in scenes(coco.load(group_scenes), 0) if len(s.boxes)]
    still = dict(flip=0.0, scale=(1.0, 1.0), translate=0.0, color_jitter=0.0, blur=0.0)
    plain = SceneImages(items, detector_config(**still), train=True)[0]
    mirrored = SceneImages(items, detector_config(**{**still, "flip": 1.0}), train=True)[0]
    np.testing.assert_allclose(mirrored["image"].numpy(), plain["image"].numpy()[:, :, ::-1], atol=1e-6)
    size = 256 / 4  # cells

    def joint_x(item: dict[str, torch.Tensor], joint: str) -> np.ndarray:
        k = KEYPOINT_INDEX[joint]
        return (item["joint_cells"][:, k, 0] + item["offsets"][:, k, 1]).numpy()

    labeled = (plain["joint_weights"][:, KEYPOINT_INDEX["left_shoulder"]] > 0).numpy()
    assert labeled.any()
    right, left = joint_x(mirrored, "right_shoulder"), joint_x(plain, "left_shoulder")
    np.testing.assert_allclose(right[labeled], size - left[labeled], atol=1e-4)
    persons = plain["person_mask"].numpy() > 0
    width = plain["box_scale"][:, 1].numpy()
    box_left = lambda item: (item["center_cell"][:, 0] + item["box_offset"][:, 1]).numpy() - width / 2  # noqa: E731
    np.testing.assert_allclose(box_left(mirrored)[persons], (size - box_left(plain) - width)[persons], atol=1e-4)


@pytest.mark.parametrize("kind", ["movenet-multipose", "centernet"])
def test_a_short_fine_tune_lowers_the_detector_loss(group_scenes: Path, kind: str) -> None:
    from training.detectors import detector_network

    torch.manual_seed(0)
    config = detector_config(kind, batch_size=4, flip=0.0)
    dm = DetectorDataModule(config, [(group_scenes, 1.0)])
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    model = DetectorModel(config.to_dict())
    model.detector.load_state_dict(detector_network(kind).load_pretrained().state_dict())
    optimizer = relative_adamw(model.detector, config)
    model.train()
    losses = []
    for _ in range(10):  # the same batch: the loss must fall
        loss, _ = model.detector_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses


def test_centernet_decoding_reads_back_its_training_targets() -> None:
    """Three persons' CenterNet targets drawn as perfect maps decode (posewheel/centernet.py) to their boxes."""
    spec = InputSpec(width=512, height=512, mean=(0.0,) * 3, std=(1 / 255,) * 3, stride=4)
    boxes = np.array([[40.0, 60.0, 120.0, 300.0], [220.0, 120.0, 100.0, 240.0], [360.0, 40.0, 110.0, 400.0]])
    t = centernet_targets(boxes, spec)
    h, w = spec.heatmap_size
    assert t["person"].shape == (1, h, w) and t["person"].max() == 1.0
    wh = np.zeros((4, h, w), np.float32)
    for (cx, cy), ltrb, on in zip(t["center_cell"], t["ltrb"], t["person_mask"], strict=True):
        if on:
            wh[:, cy, cx] = ltrb * spec.stride  # the graph's distances are input pixels, the targets' cells
    found, scores = decode_centernet(t["person"], wh, score_threshold=0.5)
    assert len(found) == 3 and scores.min() == 1.0
    np.testing.assert_allclose(found[np.argsort(found[:, 0])], boxes, atol=1e-4)
    empty = centernet_targets(np.zeros((0, 4)), spec)
    assert not empty["person"].any() and not empty["person_mask"].any()


def test_a_flipped_scene_mirrors_centernet_boxes(group_scenes: Path) -> None:
    from posewheel import dataset as coco

    items = [s for s in scenes(coco.load(group_scenes), 0) if len(s.boxes)]
    still = dict(flip=0.0, scale=(1.0, 1.0), translate=0.0, color_jitter=0.0, blur=0.0)
    plain = SceneImages(items, detector_config("centernet", **still), train=True)[0]
    mirrored = SceneImages(items, detector_config("centernet", **{**still, "flip": 1.0}), train=True)[0]
    np.testing.assert_allclose(mirrored["image"].numpy(), plain["image"].numpy()[:, :, ::-1], atol=1e-3)
    persons = plain["person_mask"].numpy() > 0
    assert persons.any()
    size = 512 / 4  # cells

    def edges(item: dict[str, torch.Tensor]) -> np.ndarray:  # left and right edges, cells, left to right
        x, (left, _, right, _) = item["center_cell"][:, 0].numpy(), item["ltrb"].numpy().T
        return np.sort(np.stack([x - left, x + right], 1)[persons], axis=0)

    np.testing.assert_allclose(edges(mirrored), np.sort(size - edges(plain)[:, ::-1], axis=0), atol=1e-4)


def test_a_fine_tuned_detector_exports_to_onnx_and_serves_from_the_artifact(
    pretrained_artifact: Path, group_scenes: Path, tmp_path: Path
) -> None:
    """The fresh install's detector (CenterNet) fine-tuned into a new version, served by the server's loader."""
    import onnxruntime as ort

    from posewheel.decoding import normalize
    from serving.engine import load_model
    from training.detector_training import detector_kind, train_detector
    from training.detectors import detector_network

    kind = detector_kind(pretrained_artifact)
    config = detector_config(kind, batch_size=4, epochs=1, val_fraction=0.25, max_minutes=2.0)
    folder = train_detector(
        config, [(group_scenes, 1.0)], pretrained_artifact, out=tmp_path / "m-det", log_dir=tmp_path
    )
    card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    assert card["version"] == "m-det" and card["detector"]["pretrained"]["package"]
    assert card["detector"]["kind"] == kind
    record = card["params"]["detector"]
    assert record["started_from"] == f"pretrained {kind}" and record["steps"] >= 1
    assert card["detector"]["score_threshold"] == record["threshold_calibration"]["score_threshold"]
    # never below the pretrained detector's threshold, which was chosen on real photographs
    assert card["detector"]["score_threshold"] >= detector_network(kind).pretrained_card().score_threshold
    assert (folder / "model.onnx").read_bytes() == (pretrained_artifact / "model.onnx").read_bytes()  # pose kept

    net = detector_network(kind).build()
    net.load_state_dict(torch.load(folder / "detector.pt", weights_only=True))
    image = Image.open(sorted((group_scenes / "images").iterdir())[0]).convert("RGB").resize((256, 256))
    from posewheel.artifact import load_card

    spec = load_card(folder).detector.input_spec()  # type: ignore[union-attr]
    x = normalize(np.asarray(image)[None], spec)
    session = ort.InferenceSession(str(folder / "detector.onnx"), providers=["CPUExecutionProvider"])
    names = card["detector"]["names"]
    served = dict(zip(names, session.run(names, {"image": x}), strict=True))
    with torch.no_grad():
        eager = {k: v.numpy() for k, v in net.eval()(torch.from_numpy(x)).items()}
    for name in names:
        # Box distances reach hundreds of pixels: float32 rounding in ONNX Runtime's fused kernels grows with
        # the map's scale, so the tolerance is 2e-5 of its largest value (at least 2e-4).
        tolerance = 2e-4 * max(1.0, float(np.abs(eager[name]).max()) / 10.0)
        np.testing.assert_allclose(served[name], eager[name], rtol=1e-5, atol=tolerance, err_msg=name)

    from posewheel import dataset as coco
    from training.detector_training import THRESHOLDS, calibrate_threshold

    section = load_card(folder).detector
    items = scenes(coco.load(group_scenes), 0)[:6]
    assert calibrate_threshold(net, items, section, floor=0.0)[0] in THRESHOLDS
    assert calibrate_threshold(net, items, section, floor=0.45)[0] >= 0.45

    model = load_model(folder, "test", threads=1)  # the server's loader: ONNX Runtime and the card only
    assert model.detector is not None
    boxes, scores, _ = model.detector.detect(image, score_threshold=0.0)
    assert len(boxes) == len(scores) >= 1

    again = train_detector(config, [(group_scenes, 1.0)], folder, log_dir=tmp_path)  # in place, from detector.pt
    assert again == folder
    assert json.loads((folder / "card.json").read_text())["params"]["detector"]["started_from"] == "m-det/detector.pt"
    shutil.rmtree(folder)


def test_the_threshold_moves_up_only_when_it_wins_by_more_than_one_person() -> None:
    """choose_threshold: best F1 at or above the floor; a higher threshold must beat a lower one by more
    than 1 / true persons, so a split of a few images does not push it up on one phantom."""
    from training.detector_training import choose_threshold

    box = np.array([[0.0, 0.0, 10.0, 10.0]])
    far = np.array([[50.0, 50.0, 60.0, 60.0]])

    def image(person_score: float, phantom_score: float | None = None) -> tuple[np.ndarray, ...]:
        boxes, scores = [box[0]], [person_score]
        if phantom_score is not None:
            boxes, scores = [*boxes, far[0]], [*scores, phantom_score]
        return np.array(scores), np.array(boxes), box

    # 10 people at 0.6; one phantom at 0.32: 0.325 removes it (F1 10/10.5 -> 1.0, a gain of one person's worth)
    few = [image(0.6, 0.32)] + [image(0.6) for _ in range(9)]
    assert choose_threshold(few, floor=0.3)[0] == 0.3
    # four phantoms between 0.3 and 0.325: raising the threshold wins by more than one person
    many = [image(0.6, 0.31) for _ in range(4)] + [image(0.6) for _ in range(6)]
    threshold, counts = choose_threshold(many, floor=0.3)
    assert threshold == 0.325 and counts == {"f1": 1.0, "found": 10.0, "matched": 10.0, "true": 10.0, "images": 10.0}
    # a person scoring below the floor stays missed: the floor wins over F1
    assert choose_threshold([image(0.2)], floor=0.3)[0] == 0.3
    assert choose_threshold([image(0.2)], floor=0.0)[0] <= 0.2
    with pytest.raises(ValueError, match=r"floor 0\.6"):
        choose_threshold([image(0.2)], floor=0.6)
