"""CenterNet in the project: the PyTorch port, cut to persons, finds the people the original graph finds.

The references in tests/fixtures/real_photos/reference_centernet.json were recorded from the
original TF.js graph (scripts/movenet_reference/make_centernet_fixture.py) on every 256x256 fixture
photograph resized to the graph's 512x512; the weights come from the set-up step
(`posewheel pretrained fetch`), never at test time: without them these tests skip.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posewheel import pretrained
from posewheel.centernet import centernet_candidates, decode_centernet
from training.centernet import (
    INPUT_SIZE,
    NAME,
    OUTPUT_NAMES,
    STRIDE,
    TF_PERSON,
    CenterNet,
    export_centernet_onnx,
    load_pretrained_centernet,
    load_tfjs_state_centernet,
    resize_bilinear_x2,
    tfjs_names_centernet,
)
from training.movenet import read_tfjs_weights

FIXTURES = Path(__file__).parent / "fixtures" / "real_photos"
REFERENCE = json.loads((FIXTURES / "reference_centernet.json").read_text(encoding="utf-8"))["images"]
SCORE_TOLERANCE = 0.02  # person score, absolute
BOX_TOLERANCE = 2.0  # box corners, input pixels at 512 x 512


def model_input(name: str, size: int = INPUT_SIZE) -> np.ndarray:
    """The recorded model input: the fixture PNG resized to size x size (Pillow, bilinear), (S, S, 3) float32 0..255."""
    image = Image.open(FIXTURES / f"{name}.png").convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, np.float32)


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)


def cached_model_json() -> Path:
    try:
        return pretrained.model_json(NAME)
    except pretrained.PretrainedMissingError as exc:
        pytest.skip(f"the CenterNet weights are not cached: {exc}")


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    return read_tfjs_weights(cached_model_json())


@pytest.fixture(scope="module")
def net() -> CenterNet:
    return load_pretrained_centernet(cached_model_json())


@pytest.fixture(scope="module")
def port_maps(net: CenterNet) -> dict[str, dict[str, np.ndarray]]:
    """The port's two maps for every recorded input, by input name (one image each, channels first)."""
    names = list(REFERENCE)
    with torch.no_grad():
        out = net(to_tensor([model_input(n) for n in names]))
    return {name: {k: v[i].numpy() for k, v in out.items()} for i, name in enumerate(names)}


def test_every_tfjs_weight_lands_in_one_layer(net: CenterNet, weights: dict[str, np.ndarray]) -> None:
    """Each graph tensor fills exactly one layer; the 80-class output keeps only its person column."""
    names = [name for pair in tfjs_names_centernet().values() for name in pair if name is not None]
    assert len(names) == len(set(names))
    layer_tensors = {k for k, v in weights.items() if v.dtype == np.float32 and v.ndim}
    assert set(names) == layer_tensors
    dropped_classes = weights[TF_PERSON + "biases"].size - 1
    pointwise = weights[TF_PERSON + "pointwise_weights"]  # (1, 1, 128, 80)
    expected = sum(weights[k].size for k in layer_tensors) - dropped_classes * (pointwise.shape[2] + 1)
    assert sum(p.numel() for p in net.parameters()) == expected == 2_004_733
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    stem = weights["tower_0/MobilenetV3/Conv/Conv2D_weights"]
    np.testing.assert_array_equal(state["backbone.stem.1.weight"], stem.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(state["person_head.1.weight"][:, :, 0, 0], pointwise[0, 0, :, :1].T)
    np.testing.assert_array_equal(state["person_head.1.bias"], weights[TF_PERSON + "biases"][:1])


def test_a_graph_constant_the_port_does_not_use_is_refused(weights: dict[str, np.ndarray]) -> None:
    """The port hard-codes the graph's scalars (1/6 as float16, 3, the x16 box scale): a graph with others fails."""
    changed = {**weights, "tower_0/mul/y": np.array(8.0, np.float32)}
    with pytest.raises(ValueError, match="tower_0/mul/y"):
        load_tfjs_state_centernet(CenterNet(), changed)


def test_maps_have_the_stride_4_shapes_for_any_multiple_of_32() -> None:
    with torch.no_grad():
        out = CenterNet().eval()(torch.zeros(1, 3, 224, 320))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"person": (1, 1, 56, 80), "wh": (1, 4, 56, 80)}
    assert float(out["person"].min()) >= 0.0 and float(out["person"].max()) <= 1.0  # after the sigmoid


def test_stages_split_the_backbone_in_four() -> None:
    """train.frozen_stages freezes these: together they are the whole backbone, each parameter once."""
    net = CenterNet()
    stage_params = [id(p) for stage in net.stages for p in stage.parameters()]
    assert len(net.stages) == 4
    assert sorted(stage_params) == sorted(id(p) for p in net.backbone.parameters())


def test_upsampling_is_tensorflow_1_legacy_bilinear() -> None:
    """Output pixel j samples input j / 2 (no half-pixel centres): copies, midpoints, the edge repeated."""
    x = torch.tensor([[0.0, 2.0], [4.0, 8.0]])[None, None]
    expected = [[0, 1, 2, 2], [2, 3.5, 5, 5], [4, 6, 8, 8], [4, 6, 8, 8]]
    np.testing.assert_array_equal(resize_bilinear_x2(x)[0, 0].numpy(), expected)


@pytest.mark.parametrize("name", list(REFERENCE))
def test_port_finds_the_persons_the_original_finds(name: str, port_maps: dict[str, dict[str, np.ndarray]]) -> None:
    """The original's person detections (best 20): the same best one, and each of them among the port's."""
    boxes, scores = centernet_candidates(port_maps[name]["person"], port_maps[name]["wh"], STRIDE)
    reference = np.asarray(REFERENCE[name]["persons"]).reshape(-1, 5)
    assert np.abs(scores[0] - reference[0, 4]) < SCORE_TOLERANCE, f"{name}: best {scores[0]}, original {reference[0]}"
    assert np.abs(boxes[0] - reference[0, :4]).max() < BOX_TOLERANCE, f"{name}: {boxes[0]} vs {reference[0, :4]}"
    for row in reference:  # near-equal scores may swap places: look each one up
        same = (np.abs(scores - row[4]) < SCORE_TOLERANCE) & (np.abs(boxes - row[:4]).max(axis=1) < BOX_TOLERANCE)
        assert same.any(), f"{name}: the original's {row} is not among the port's candidates"


@pytest.mark.parametrize("name", list(REFERENCE))
def test_person_map_matches_the_original_everywhere(name: str, port_maps: dict[str, dict[str, np.ndarray]]) -> None:
    """Not only at the peaks: the map's maximum and its 16 x 16 block means."""
    person = port_maps[name]["person"][0]
    size = person.shape[0] // 16
    pooled = person.reshape(16, size, 16, size).mean(axis=(1, 3))
    np.testing.assert_allclose(pooled, REFERENCE[name]["person_pooled"], atol=1e-3)
    assert abs(person.max() - REFERENCE[name]["person_max"]) < 1e-3


def test_exported_onnx_answers_like_pytorch(net: CenterNet, tmp_path: Path) -> None:
    """Maps only, dynamic batch and size: ONNX Runtime gives PyTorch's maps."""
    import onnx
    import onnxruntime as ort

    path = tmp_path / "centernet.onnx"
    export_centernet_onnx(net, path)
    assert onnx.load(str(path)).opset_import[0].version == 18
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for names, size in ((["two_people_256", "grace_hopper_256"], 512), (["four_people_256"], 384)):
        x = to_tensor([model_input(n, size) for n in names])
        with torch.no_grad():
            eager = {k: v.numpy() for k, v in net(x).items()}
        served = dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), {"image": x.numpy()}), strict=True))
        assert served["person"].shape == (len(names), 1, size // STRIDE, size // STRIDE)
        np.testing.assert_allclose(served["person"], eager["person"], atol=1e-4)
        np.testing.assert_allclose(served["wh"], eager["wh"], atol=0.05)  # input pixels, of boxes hundreds wide


def test_decode_suppresses_overlaps_and_keeps_the_threshold() -> None:
    """Two peaks on one person (boxes overlapping by IoU 0.5) give one person; a weak third peak is dropped."""
    person = np.zeros((1, 16, 16), np.float32)
    wh = np.full((4, 16, 16), 12.0, np.float32)  # every box 24 x 24 input pixels around its cell
    person[0, 4, 4], person[0, 4, 6], person[0, 12, 12] = 0.9, 0.7, 0.1  # peaks 2 cells (8 px) apart, and a weak one
    boxes, scores = decode_centernet(person, wh, stride=4, score_threshold=0.2, nms_iou=0.4)
    assert scores.tolist() == pytest.approx([0.9])
    assert boxes.tolist() == [[4.0, 4.0, 24.0, 24.0]]
    kept_both, _ = decode_centernet(person, wh, stride=4, score_threshold=0.2, nms_iou=0.6)
    assert len(kept_both) == 2
    nobody, _ = decode_centernet(np.zeros_like(person), wh, stride=4)
    assert nobody.shape == (0, 4)


def test_a_card_says_which_detector_it_carries() -> None:
    """A centernet card reads the graph's two maps; a card naming another kind's outputs is refused."""
    from pydantic import ValidationError

    from posewheel.artifact import DetectorCard

    assert DetectorCard(kind="centernet").names == ["person", "wh"]
    assert DetectorCard().names == ["heatmaps", "centers", "regress", "offsets", "box_scale", "box_offset"]
    with pytest.raises(ValidationError, match="centernet detector reads"):
        DetectorCard(kind="centernet", names=["heatmaps"])
    with pytest.raises(ValidationError, match="at most 6"):
        DetectorCard(max_persons=10)


def test_a_fresh_install_counts_the_people_in_every_real_photograph(pretrained_artifact: Path) -> None:
    """The real-photo bar of the find-every-person issue, as served: the pretrained artifact (CenterNet at
    its card's threshold) finds every person in the photographs of 1 to 3 people, ascent's two seen from
    behind included, and nobody in the people-free ones (tests/support/real_photos.py)."""
    from posewheel.artifact import load_card
    from tests.support.real_photos import count_persons

    assert load_card(pretrained_artifact).detector.kind == "centernet"  # type: ignore[union-attr]
    rows = count_persons(pretrained_artifact)
    in_bar = [row for row in rows if int(row["expected"]) <= 3]  # type: ignore[call-overload]
    assert len(in_bar) == 13 and any(row["photo"] == "ascent" for row in in_bar)
    wrong = [row for row in in_bar if not row["ok"]]
    assert not wrong, wrong


def test_a_big_group_is_answered_past_twenty(pretrained_artifact: Path, tmp_path: Path) -> None:
    """44 people in one picture (the six cached group photographs twice, four to a row, tests/support/
    moving_people.py BIG_GROUPS), as served without boxes: the fresh install's card answers more than 20 of them,
    each once; at 20 (the card's cap in sessions 33-41) it found 16. A caller's smaller cap is kept."""
    from posewheel import centernet
    from posewheel.artifact import load_card
    from tests.support.moving_people import big_group_set, who
    from training.evaluate_persons import predict_without_boxes

    assert load_card(pretrained_artifact).detector.max_persons == centernet.MAX_PERSONS == 64  # type: ignore[union-attr]
    data, marked = big_group_set(tmp_path, ["44_people"])
    ((image_id, (_, noses)),) = marked.items()
    answered = who(predict_without_boxes(pretrained_artifact, data), image_id, noses)
    found = [i for i in range(len(noses)) if answered.count(i) == 1]
    assert len(found) > 30, answered  # measured 42 (16 at 20 persons, 34 with tiles of 0.625 of the long side)
    assert all(answered.count(i) <= 1 for i in range(len(noses))), answered  # nobody answered twice
    assert answered.count(None) <= 1, answered  # an answer near nobody's nose: measured 1 of 43
    assert len(who(predict_without_boxes(pretrained_artifact, data, max_persons=20), image_id, noses)) <= 20


def test_a_group_nobody_of_whom_the_detector_is_sure_of_is_looked_at_in_tiles(
    pretrained_artifact: Path, tmp_path: Path
) -> None:
    """66 people in one picture (the six group photographs three times, six to a row): in the whole picture the
    detector scored every one of them under its threshold (with the crops of session 53), so until session 42,
    when only a person it was sure of called for tiles, the picture was never tiled and 25 were found, those the
    pose network confirmed. Where it is sure of nobody, a person it is unsure of whom the pose network reads calls
    for tiles (`FindOptions.unsure_call_tiles`): measured 56 found, nobody twice, no answer near nobody's nose
    (benchmarks/big_groups.py)."""
    from posewheel.detection import FindOptions
    from tests.support.crops import crops
    from tests.support.moving_people import big_group_set, who
    from training.evaluate_persons import predict_without_boxes

    data, marked = big_group_set(tmp_path, ["66_people"])
    ((image_id, (_, noses)),) = marked.items()

    def found(options: FindOptions) -> tuple[int, list[int | None]]:
        answered = who(predict_without_boxes(pretrained_artifact, data, find_options=options), image_id, noses)
        return sum(1 for i in range(len(noses)) if answered.count(i) == 1), answered

    now, answered = found(FindOptions())
    assert now > 45, answered  # measured 56 of 66 (54 before session 60's arm rule)
    assert all(answered.count(i) <= 1 for i in range(len(noses))) and answered.count(None) <= 1, answered
    # With crops that count every pixel (session 54) the whole picture's look is sure of some of them, and they call
    # for tiles anyway (measured 54 either way); with the crops of session 53 it is sure of nobody, and the option is
    # what finds them (measured 58 against 35, the whole picture's alone; 55 against 34 before session 60's arm rule
    # read more parts in it).
    with crops("sampled"):
        tiled = found(FindOptions())[0]
        assert tiled > 45
        assert found(FindOptions(unsure_call_tiles=False))[0] < tiled - 15
