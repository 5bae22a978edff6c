"""Distillation on unlabeled real photographs (training/distill.py): a fine-tune that does not forget real people."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from posewheel import pretrained
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
