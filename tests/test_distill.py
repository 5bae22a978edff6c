"""Distillation on unlabeled real photographs (training/distill.py): a fine-tune that does not forget real people."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from posewheel import pretrained
from posewheel.dataset import Dataset
from training.config import TrainConfig
from training.detectors import detector_network
from training.distill import RealCrops, distill_loss
from training.movenet import load_pretrained
from training.realphotos import CHECK_SET

CONFIG = TrainConfig.from_section({"config": "movenet-lightning", "distill_weight": 1.0, "distill_batch": 4})


def test_the_real_photographs_come_from_the_pinned_package_and_are_not_the_check_set() -> None:
    frames = pretrained.real_frames()
    assert [p.name for p in frames] == [f"sample{i}.jpg" for i in range(1, 7)]
    held_out = {p.read_bytes() for p in CHECK_SET.iterdir() if p.suffix in (".png", ".jpg")}
    assert not held_out & {p.read_bytes() for p in frames}


def test_crops_are_input_sized_seeded_and_varied() -> None:
    a = RealCrops(pretrained.real_frames(), CONFIG.input_spec, seed=3).crops(6)
    b = RealCrops(pretrained.real_frames(), CONFIG.input_spec, seed=3).crops(6)
    assert a.shape == (6, 192, 192, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert len({c.tobytes() for c in a}) == 6
    batch = RealCrops(pretrained.real_frames(), CONFIG.input_spec, seed=3).batch(2)
    assert batch.shape == (2, 3, 192, 192) and float(batch.min()) >= -1.01 and float(batch.max()) <= 1.01


def test_missing_real_photographs_name_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(pretrained.PretrainedMissingError, match="posewheel pretrained fetch"):
        pretrained.real_frames(tmp_path / "empty")


def test_fetch_refuses_photographs_that_are_not_the_pinned_package(tmp_path: Path) -> None:
    tarball = tmp_path / "impostor.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        info = tarfile.TarInfo("package/demo/sample1.jpg")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"jpg"))
    with pytest.raises(ValueError, match="integrity"):
        pretrained.fetch_real_frames(cache=tmp_path / "frames", tarball=tarball, force=True)
    assert not (tmp_path / "frames").exists()


def test_the_penalty_is_small_for_the_pretrained_network_and_grows_as_it_drifts() -> None:
    """At the teacher's own weights only the soft targets' entropy is left; a drifted head costs more."""
    from training.lightning_module import PoseModel
    from training.train import load_pretrained_weights

    model = PoseModel(CONFIG.to_dict())
    load_pretrained_weights(model.net, "movenet-lightning")
    model.on_fit_start()
    at_start = model.distill_penalty()
    assert at_start is not None and float(at_start.detach()) < 0.5
    with torch.no_grad():
        model.net.offset_head[1].bias.add_(1.0)  # every offset one cell off
    drifted = model.distill_penalty()
    assert drifted is not None and float(drifted.detach()) > float(at_start.detach()) + 0.5
    plain = PoseModel(TrainConfig.from_section({"config": "movenet-lightning", "distill_weight": 0}).to_dict())
    plain.on_fit_start()
    assert plain.distill_penalty() is None
    assert "_distill" not in dict(model.named_modules())  # the teacher is never saved or exported


def test_distilling_brings_a_drifted_network_back_to_the_pretrained_answers() -> None:
    """A student whose offsets were pushed off learns the teacher's answers back from real crops alone."""
    torch.manual_seed(0)
    teacher = load_pretrained("movenet-lightning").eval()
    student = load_pretrained("movenet-lightning")
    with torch.no_grad():
        student.offset_head[1].bias.add_(1.0)  # every joint one cell off
    crops = RealCrops(pretrained.real_frames(), CONFIG.input_spec, seed=0)
    fixed = crops.batch(4)
    with torch.no_grad():
        before = float(distill_loss(student.forward_logits(fixed), teacher(fixed)))
    optimizer = torch.optim.Adam(student.offset_head.parameters(), lr=0.02)  # the drifted head learns it back
    for _ in range(15):
        images = crops.batch(4)
        with torch.no_grad():
            target = teacher(images)
        loss = distill_loss(student.forward_logits(images), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = float(distill_loss(student.forward_logits(fixed), teacher(fixed)))
    assert after < 0.6 * before, (before, after)


def test_the_detector_distils_too_and_its_penalty_grows_when_it_stops_seeing_people() -> None:
    """CenterNet (train.distill_weight on a detector): small at the pretrained weights, large when its
    person map is pushed down, i.e. when it would stop finding the people in the group photographs."""
    from training.lightning_module import DetectorModel

    config = TrainConfig.from_section({"config": "centernet", "distill_weight": 1.0, "distill_batch": 2})
    model = DetectorModel(config.to_dict())
    model.net.load_state_dict(detector_network("centernet").load_pretrained().state_dict())
    model.on_fit_start()
    at_start = model.distill_penalty()
    assert at_start is not None
    with torch.no_grad():
        model.net.person_head[-1].bias.sub_(4.0)  # every person score far lower
    drifted = model.distill_penalty()
    assert drifted is not None and float(drifted.detach()) > 2 * float(at_start.detach()) + 0.5
    assert all("teacher" not in name for name, _ in model.named_modules())


def test_one_pass_over_the_batch_and_the_real_crops_gives_the_losses_and_gradients_of_two(studio_set: Dataset) -> None:
    """A distilling step runs the drawn batch and the real crops through the network together
    (movenet_distilled_loss): the same losses and weight gradients as a pass for each, because no
    MoveNet layer looks across the batch; only the per-step cost differs (benchmarks/distill_step.py)."""
    from training.data import PoseDataModule
    from training.lightning_module import movenet_distilled_loss, movenet_loss

    config = TrainConfig.from_section({"config": "movenet-lightning", "batch_size": 4, "num_workers": 0,
                                       "val_fraction": 0.1, "wandb": False})  # fmt: skip
    torch.manual_seed(0)
    dm = PoseDataModule(config, [(studio_set.root, 1.0)])
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)  # as training moves it
    net = load_pretrained("movenet-lightning").train().to(memory_format=torch.channels_last)
    with torch.no_grad():
        net.offset_head[1].bias.add_(0.5)  # a drifted student: the distillation term is not at its minimum
    real = RealCrops(pretrained.real_frames(), config.input_spec, seed=1).batch(2)
    with torch.no_grad():
        target = load_pretrained("movenet-lightning")(real)

    def gradients(loss: torch.Tensor) -> list[torch.Tensor]:
        net.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in net.parameters() if p.grad is not None]

    total, joints, distill = movenet_distilled_loss(net, batch, config, real, target)
    one = gradients(total + 0.3 * distill)
    separate_total, separate_joints = movenet_loss(net, batch, config)
    separate_distill = distill_loss(net.forward_logits(real), target)
    two = gradients(separate_total + 0.3 * separate_distill)
    assert float(distill.detach()) > 0.1  # the crops' term is there and not negligible
    for a, b in [(total, separate_total), (joints, separate_joints), (distill, separate_distill)]:
        assert float(a) == pytest.approx(float(b), rel=1e-4)
    assert len(one) == len(two) == len(list(net.parameters()))
    for a, b in zip(one, two, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-6)
