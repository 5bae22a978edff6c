"""MoveNet MultiPose in the project: the PyTorch port and the numpy decoding find the people the original finds.

The references in tests/fixtures/real_photos/reference_multipose.json were recorded from the
original TF.js graph (scripts/movenet_reference/make_multipose_fixture.py), on the one-person
photographs, the people-free ones, and inputs with two and four people pasted from them; the
weights come from the set-up step (`posewheel pretrained fetch`), never at test time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posewheel import pretrained
from posewheel.multipose import OUTPUT_NAMES, decode_multipose, multipose_candidates
from training.movenet import read_tfjs_weights
from training.multipose import MoveNetMultiPose, export_multipose_onnx, load_pretrained_multipose

FIXTURES = Path(__file__).parent / "fixtures" / "real_photos"
REFERENCE = json.loads((FIXTURES / "reference_multipose.json").read_text(encoding="utf-8"))["images"]
WITH_PEOPLE = [n for n in REFERENCE if not n.startswith("nobody")]
NOBODY = [n for n in REFERENCE if n.startswith("nobody")]
THRESHOLD = 0.2  # person score: who counts as found
CONFIDENT = 0.3  # reference keypoints above this score count for the max-error bar


def model_input(name: str) -> np.ndarray:
    """The recorded model input (S, S, 3) uint8."""
    return np.asarray(Image.open(FIXTURES / f"{name}.png").convert("RGB"), np.uint8)


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images).astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2)


def reference_people(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The original's people scoring at least THRESHOLD, best first, in decode_multipose's units (input pixels)."""
    size = REFERENCE[name]["input_size"]
    rows = np.asarray(REFERENCE[name]["candidates"])
    rows = rows[np.argsort(-rows[:, 55], kind="stable")]
    rows = rows[rows[:, 55] >= THRESHOLD]
    kps = rows[:, :51].reshape(-1, 17, 3)
    ymin, xmin, ymax, xmax = (rows[:, 51:55] * size).T
    boxes = np.stack([xmin, ymin, xmax - xmin, ymax - ymin], axis=1)
    return boxes, rows[:, 55], kps[..., [1, 0]] * size, kps[..., 2]


@pytest.fixture(scope="module")
def net() -> MoveNetMultiPose:
    return load_pretrained_multipose()


@pytest.fixture(scope="module")
def port_maps(net: MoveNetMultiPose) -> dict[str, dict[str, np.ndarray]]:
    """The port's six maps for every recorded input, by input name (one image each, channels first)."""
    by_size: dict[int, list[str]] = {}
    for name, entry in REFERENCE.items():
        by_size.setdefault(entry["input_size"], []).append(name)
    maps = {}
    with torch.no_grad():
        for names in by_size.values():
            out = net(to_tensor([model_input(n) for n in names]))
            for i, name in enumerate(names):
                maps[name] = {k: v[i].numpy() for k, v in out.items()}
    return maps


def decode(maps: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return decode_multipose(*(maps[k] for k in OUTPUT_NAMES), stride=4, score_threshold=THRESHOLD)


def test_tfjs_weights_land_in_the_right_layers(net: MoveNetMultiPose) -> None:
    weights = read_tfjs_weights(pretrained.model_json("movenet-multipose"))
    stem = weights["center_net_mobile_net_v2fpn_feature_extractor/model_1/model/Conv1/Conv2D_weights"]
    assert stem.shape == (3, 3, 3, 48)  # width 1.5
    np.testing.assert_array_equal(net.backbone.stem[1].weight.detach().numpy(), stem.transpose(3, 2, 0, 1))
    box = weights["box_scale_0/conv2d_5/Conv2D/ReadVariableOp"]  # (1, 1, 96, 2)
    np.testing.assert_array_equal(net.box_scale_head[1].weight.detach().numpy(), box.transpose(3, 2, 0, 1))
    layer_weights = [
        v
        for k, v in weights.items()
        if v.dtype == np.float32 and v.ndim and k not in ("Reshape", "truediv", "zeros_like")
    ]
    assert sum(p.numel() for p in net.parameters()) == sum(v.size for v in layer_weights) == 4_723_346


def test_a_known_activation_of_the_stem(net: MoveNetMultiPose) -> None:
    """The first convolution's output at one position equals the hand-computed sum (SAME padding, ReLU6)."""
    image = model_input("two_people_256").astype(np.float32) / 127.5 - 1.0
    with torch.no_grad():
        out = net.backbone.stem(torch.from_numpy(image).permute(2, 0, 1)[None])[0]  # (48, 128, 128)
    conv = net.backbone.stem[1]
    kernel, bias = conv.weight.detach().numpy(), conv.bias.detach().numpy()
    i, j = 70, 33  # stride 2, TF SAME: output (i, j) reads input rows 2i..2i+2, cols 2j..2j+2
    patch = image[2 * i : 2 * i + 3, 2 * j : 2 * j + 3].transpose(2, 0, 1)
    expected = np.clip((kernel * patch[None]).sum(axis=(1, 2, 3)) + bias, 0.0, 6.0)
    np.testing.assert_allclose(out[:, i, j].numpy(), expected, atol=1e-4)


def test_maps_have_the_stride_4_shapes_for_any_multiple_of_32(net: MoveNetMultiPose) -> None:
    channels = {"heatmaps": 17, "centers": 1, "regress": 34, "offsets": 34, "box_scale": 2, "box_offset": 2}
    with torch.no_grad():
        out = net(torch.zeros(1, 3, 224, 320))
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (1, c, 56, 80) for k, c in channels.items()}
    assert float(out["centers"].min()) >= 0.0 and float(out["heatmaps"].max()) <= 1.0  # after the sigmoids


@pytest.mark.parametrize("name", WITH_PEOPLE)
def test_port_finds_the_people_the_original_finds(name: str, port_maps: dict[str, dict[str, np.ndarray]]) -> None:
    """Same people above the threshold; boxes and keypoints within 1 px median, 3 px max (confident ones)."""
    boxes, scores, points, point_scores = decode(port_maps[name])
    ref_boxes, ref_scores, ref_points, ref_point_scores = reference_people(name)
    assert len(scores) == len(ref_scores), f"{name}: port finds {scores}, the original {ref_scores}"
    for p in range(len(ref_scores)):  # best first in both; a close score race would pair boxes badly
        corners = np.abs(
            np.r_[boxes[p, :2], boxes[p, :2] + boxes[p, 2:]]
            - np.r_[ref_boxes[p, :2], ref_boxes[p, :2] + ref_boxes[p, 2:]]
        )
        assert np.median(corners) < 1.0 and corners.max() < 3.0, f"{name} person {p}: box corners off by {corners}"
        err = np.linalg.norm(points[p] - ref_points[p], axis=1)
        confident = ref_point_scores[p] > CONFIDENT
        assert np.median(err) < 1.0, f"{name} person {p}: median keypoint error {np.median(err):.3f} px"
        assert err[confident].max() < 3.0, f"{name} person {p}: max error {err[confident].max():.3f} px"
        np.testing.assert_allclose(point_scores[p], ref_point_scores[p], atol=2e-3)
    np.testing.assert_allclose(scores, ref_scores, atol=2e-3)


def test_several_people_are_found_apart(port_maps: dict[str, dict[str, np.ndarray]]) -> None:
    """Two pasted people are two people, each box on its own half, and four at 384 px are four."""
    boxes = decode(port_maps["two_people_256"])[0]
    assert len(boxes) == 2
    centres = np.sort(boxes[:, 0] + boxes[:, 2] / 2)
    assert centres[0] < 128 < centres[1]
    assert len(decode(port_maps["four_people_384"])[0]) == 4


def test_decoding_reproduces_every_candidate_of_the_graph(port_maps: dict[str, dict[str, np.ndarray]]) -> None:
    """All six candidates of the graph's output, not only the people kept: the same boxes and scores."""
    for name in WITH_PEOPLE:
        boxes, scores, _, _ = multipose_candidates(*(port_maps[name][k] for k in OUTPUT_NAMES))
        ref = np.asarray(REFERENCE[name]["candidates"])
        size = REFERENCE[name]["input_size"]
        np.testing.assert_allclose(scores, ref[:, 55], atol=2e-3, err_msg=name)
        np.testing.assert_allclose(boxes * 4, ref[:, 51:55] * size, atol=1.0, err_msg=name)


@pytest.mark.parametrize("name", NOBODY)
def test_nobody_photographs_give_nobody(name: str, port_maps: dict[str, dict[str, np.ndarray]]) -> None:
    original_best = max(row[55] for row in REFERENCE[name]["candidates"])
    assert original_best < THRESHOLD, f"the original graph finds someone in {name} ({original_best:.3f})"
    _, scores, _, _ = multipose_candidates(*(port_maps[name][k] for k in OUTPUT_NAMES))
    assert scores.max() < THRESHOLD
    assert abs(scores.max() - original_best) < 2e-3
    assert len(decode(port_maps[name])[0]) == 0


def test_decoding_reads_two_people_off_hand_made_maps() -> None:
    """Two centres, their boxes and joints drawn as perfect maps decode to those boxes and joints."""
    h = w = 32
    channels = {"heatmaps": 17, "centers": 1, "regress": 34, "offsets": 34, "box_scale": 2, "box_offset": 2}
    maps = {k: np.zeros((c, h, w), np.float32) for k, c in channels.items()}
    rng = np.random.default_rng(0)
    people = [((8, 9), (10.0, 8.0)), ((20, 22), (12.0, 6.0))]  # centre cell (y, x), box (height, width) cells
    expected = []
    for (cy, cx), (bh, bw) in people:
        maps["centers"][0, cy, cx] = 0.9
        maps["box_scale"][:, cy, cx] = (bh, bw)
        joints = np.stack([rng.integers(cy - 4, cy + 4, 17), rng.integers(cx - 3, cx + 3, 17)], axis=1)
        sub = rng.uniform(-0.4, 0.4, size=(17, 2)).astype(np.float32)
        maps["regress"][:, cy, cx] = (joints - (cy, cx)).reshape(-1)
        for k, (jy, jx) in enumerate(joints):
            maps["heatmaps"][k, jy, jx] = 0.8
            maps["offsets"][2 * k : 2 * k + 2, jy, jx] = sub[k]
        expected.append(((cx - bw / 2, cy - bh / 2, bw, bh), (joints + sub)[:, ::-1]))
    boxes, scores, points, point_scores = decode_multipose(*(maps[k] for k in OUTPUT_NAMES), stride=4)
    assert len(boxes) == 2
    np.testing.assert_allclose(scores, 0.9 * 0.8, atol=1e-6)
    np.testing.assert_allclose(point_scores, 0.8, atol=1e-6)
    for p, (box, joints) in enumerate(expected):
        np.testing.assert_allclose(boxes[p], np.asarray(box) * 4, atol=1e-5)
        np.testing.assert_allclose(points[p], joints * 4, atol=1e-5)


def test_exported_onnx_answers_like_pytorch(net: MoveNetMultiPose, tmp_path: Path) -> None:
    """Maps only, dynamic batch and size: ONNX Runtime gives PyTorch's maps and the same people."""
    import onnx
    import onnxruntime as ort

    path = tmp_path / "multipose.onnx"
    export_multipose_onnx(net, path)
    assert onnx.load(str(path)).opset_import[0].version == 18
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for names in (["two_people_256", "astronaut_256", "grace_hopper_256"], ["four_people_384"]):
        x = to_tensor([model_input(n) for n in names])
        with torch.no_grad():
            eager = {k: v.numpy() for k, v in net(x).items()}
        served = dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), {"image": x.numpy()}), strict=True))
        for key in OUTPUT_NAMES:
            np.testing.assert_allclose(served[key], eager[key], atol=2e-4, err_msg=key)
        for i in range(len(names)):
            a = decode({k: v[i] for k, v in served.items()})
            b = decode({k: v[i] for k, v in eager.items()})
            assert len(a[0]) == len(b[0])
            assert np.abs(a[2] - b[2]).max(initial=0.0) < 0.01
