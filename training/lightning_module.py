"""The LightningModule: visibility-weighted heatmap MSE, AdamW with warm-up + cosine, validation PCK.

The network is fitted in its canonical order (training/model.py): targets of back-facing persons
swap their left/right pairs, and a binary cross-entropy teaches the facing classifier. Persons whose
facing is unknown train only their unpaired joints (the nose) and no facing.

The cosine runs on whichever is further along, steps or the wall-clock budget, so a run stopped by
`max_minutes` still ends at a small learning rate instead of being cut off at the peak.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from functools import partial
from typing import Any

import lightning.pytorch as L
import numpy as np
import torch

from posewheel import pretrained
from posewheel.decoding import InputSpec, decode_outputs
from training.centernet import STRIDE as CENTERNET_STRIDE
from training.centernet import CenterNet
from training.config import DETECTOR_CONFIGS, TrainConfig
from training.detectors import detector_network
from training.distill import SCENE_CROPS, DistillLoss, RealCrops, centernet_distill_loss, distill_loss
from training.metrics import mean_px_error, pck
from training.model import NetConfig, PoseNet, to_person_order
from training.movenet import CONFIGS as MOVENET_CONFIGS
from training.movenet import MoveNet, load_pretrained
from training.multipose import MoveNetMultiPose


def heatmap_loss(
    pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, foreground: float = 10.0
) -> torch.Tensor:
    """Squared error per joint, weighted by visibility; pred/target (N, K, h, w), weights (N, K).

    Pixels are weighted 1 + (foreground - 1) * target: the optimum is still pred == target, but the
    few peak pixels are no longer drowned by the background, so training leaves the "all zeros"
    plateau (loss ~0.009) in far fewer steps.
    """
    pixel_weight = 1.0 + (foreground - 1.0) * target
    per_joint = (pixel_weight * (pred - target) ** 2).mean(dim=(2, 3))
    return (per_joint * weights).sum() / weights.numel()


def facing_accuracy(logits: torch.Tensor, facing: torch.Tensor) -> torch.Tensor | None:
    """Share of persons with a known facing (+1/-1) whose logit has its sign; None when none is known."""
    known = facing != 0
    if not known.any():
        return None
    return ((logits[known] > 0) == (facing[known] > 0)).float().mean()


def fit_loss(
    net: PoseNet, batch: dict[str, torch.Tensor], config: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """What a training step minimises: (total loss, heatmap loss, facing accuracy or None).

    Targets and weights go to the network's canonical order with each person's facing; persons of
    unknown facing keep only their unpaired joints and add no facing term.
    """
    canonical, logits = net.forward_parts(batch["image"])
    facing, flips = batch["facing"], net.flip_index
    known = facing != 0
    paired = flips != torch.arange(len(flips), device=flips.device)
    weights = to_person_order(batch["weights"], facing, flips) * (known[:, None] | ~paired[None, :])
    targets = to_person_order(batch["heatmaps"], facing, flips)
    joints = heatmap_loss(canonical, targets, weights, config.foreground_weight)
    if not known.any():
        return joints, joints, None
    side = torch.nn.functional.binary_cross_entropy_with_logits(logits[known], (facing[known] > 0).float())
    return joints + config.facing_loss_weight * side, joints, facing_accuracy(logits, facing)


def step_loss(
    net: torch.nn.Module, batch: dict[str, torch.Tensor], config: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """A training step's loss for either kind of pose network: (total, joint heatmap loss, facing accuracy or None)."""
    if isinstance(net, MoveNet):
        return (*movenet_loss(net, batch, config), None)
    assert isinstance(net, PoseNet)
    return fit_loss(net, batch, config)


def weighted_bce(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, foreground: float) -> torch.Tensor:
    """Binary cross-entropy of sigmoid maps (N, K, h, w) against Gaussian targets, per-joint weights (N, K).

    Pixels weigh 1 + (foreground - 1) * target, as in `heatmap_loss`: peaks are not drowned by background.
    """
    pixel_weight = 1.0 + (foreground - 1.0) * target
    per_pixel = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return ((pixel_weight * per_pixel).mean(dim=(2, 3)) * weights).sum() / weights.numel()


def at_cells(maps: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Values of maps (N, C, h, w) at integer cells (N, M, 2) as (x, y) -> (N, M, C)."""
    n, c, h, w = maps.shape
    index = (cells[..., 1] * w + cells[..., 0]).long()  # (N, M)
    flat = maps.reshape(n, c, h * w)
    return torch.gather(flat, 2, index[:, None, :].expand(n, c, index.shape[1])).permute(0, 2, 1)


def movenet_loss(
    net: MoveNet, batch: dict[str, torch.Tensor], config: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """MoveNet's four heads against training.targets.movenet_targets: (total loss, joint heatmap loss).

    Heatmaps and centres: weighted binary cross-entropy on the logits; regression (at the centre
    cell) and offsets (at each joint's cell): L1 in cells, weighted by visibility.
    """
    return movenet_terms(net.forward_logits(batch["image"]), batch, config)


def movenet_terms(
    out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], config: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """movenet_loss of the network's logits `out` on `batch`: (total loss, joint heatmap loss)."""
    weights = batch["weights"]
    n, k = weights.shape
    joints = weighted_bce(out["heatmaps"], batch["heatmaps"], weights, config.foreground_weight)
    has_person = (weights.sum(dim=1, keepdim=True) > 0).float()
    centre = weighted_bce(out["centers"], batch["center_heatmap"], has_person, config.foreground_weight)
    regress = at_cells(out["regress"], batch["center_cell"][:, None, :])[:, 0].reshape(n, k, 2)
    regress_l1 = ((regress - batch["regress"]).abs().sum(dim=2) * weights).sum() / weights.sum().clamp(min=1.0)
    per_joint = at_cells(out["offsets"], batch["joint_cells"]).reshape(n, k, k, 2)
    offsets = per_joint[:, torch.arange(k), torch.arange(k)]  # joint j's own (dy, dx) at its own cell
    offset_l1 = ((offsets - batch["offsets"]).abs().sum(dim=2) * weights).sum() / weights.sum().clamp(min=1.0)
    total = joints + centre + config.regress_loss_weight * regress_l1 + offset_l1
    return total, joints


def movenet_distilled_loss(
    net: MoveNet,
    batch: dict[str, torch.Tensor],
    config: TrainConfig,
    real: torch.Tensor,
    teacher: dict[str, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """movenet_loss on `batch` and distill_loss on the real-photo crops `real` against the teacher's answers on
    them, from one forward pass over both: (total, joint heatmap loss, distillation loss, unweighted).

    The same losses and gradients as a pass for each (MoveNet has no batch-dependent layer: its BatchNorms
    are folded), but a pass of its own for a few crops costs a CPU step far more than their share of
    the images, in per-layer overhead: a loop's 9-minute fine-tune with 2 crops a step made 447 steps
    that way and 550 in one pass (623 without distilling); benchmarks/distill_step.py times both steps.
    """
    n = len(batch["image"])
    images = torch.cat([batch["image"], real.to(batch["image"].dtype)])
    if batch["image"].is_contiguous(memory_format=torch.channels_last):
        images = images.contiguous(memory_format=torch.channels_last)
    out = net.forward_logits(images)
    total, joints = movenet_terms({k: v[:n] for k, v in out.items()}, batch, config)
    return total, joints, distill_loss({k: v[n:] for k, v in out.items()}, teacher)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss of sigmoid maps (N, C, h, w) against Gaussian targets peaking at 1.

    Summed over the pixels and divided by the number of peaks (at least 1): each person weighs the
    same however large the image, and the easy background does not drown the few peaks (Zhou et al. 2019).
    """
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    peak = target >= 1.0
    positive = peak * (1 - p) ** alpha * torch.log(p)
    negative = ~peak * (1 - target) ** beta * p**alpha * torch.log(1 - p)
    return -(positive + negative).sum() / peak.sum().clamp(min=1)


def multipose_loss(
    net: MoveNetMultiPose, batch: dict[str, torch.Tensor], config: TrainConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The person detector's six heads against training.targets.multipose_targets: (total, each term).

    Heatmaps and centres: CenterNet's focal loss over every image, people-free ones included (that
    is what teaches it not to invent persons). At each person's centre cell: L1
    of the box size (x box_scale_loss_weight) and of the box offset; of the joint regression (x
    regress_loss_weight, labeled joints); at each labeled joint's cell: L1 of its offset. In cells.
    """
    out = net.forward_logits(batch["image"])
    n, k = out["heatmaps"].shape[:2]
    joints = focal_loss(out["heatmaps"], batch["heatmaps"])
    centre = focal_loss(out["centers"], batch["centers"])
    mask, weights = batch["person_mask"], batch["joint_weights"]  # (N, M), (N, M, K)
    m = mask.shape[1]
    persons = mask.sum().clamp(min=1.0)
    labeled = weights.sum().clamp(min=1.0)
    cells = batch["center_cell"]
    box_scale = ((at_cells(out["box_scale"], cells) - batch["box_scale"]).abs().sum(2) * mask).sum() / persons
    box_offset = ((at_cells(out["box_offset"], cells) - batch["box_offset"]).abs().sum(2) * mask).sum() / persons
    regress = at_cells(out["regress"], cells).reshape(n, m, k, 2)
    regress_l1 = ((regress - batch["regress"]).abs().sum(3) * weights).sum() / labeled
    per_joint = at_cells(out["offsets"], batch["joint_cells"].reshape(n, m * k, 2)).reshape(n, m, k, k, 2)
    offsets = per_joint[:, :, torch.arange(k), torch.arange(k)]  # joint j's own (dy, dx) at its own cell
    offset_l1 = ((offsets - batch["offsets"]).abs().sum(3) * weights).sum() / labeled
    terms = {
        "heatmaps": joints,
        "centers": centre,
        "box_scale": box_scale,
        "box_offset": box_offset,
        "regress": regress_l1,
        "offsets": offset_l1,
    }
    total = (
        joints
        + centre
        + config.box_scale_loss_weight * box_scale
        + box_offset
        + config.regress_loss_weight * regress_l1
        + offset_l1
    )
    return total, terms


def centernet_loss(
    net: CenterNet, batch: dict[str, torch.Tensor], config: TrainConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """CenterNet's two heads against training.targets.centernet_targets: (total, each term).

    The person map: the focal loss over every image, people-free ones included. At each person's
    centre cell: the L1 of the four box distances, in cells (x box_scale_loss_weight, as the
    MultiPose box size), averaged over the persons of the batch.
    """
    out = net.forward_logits(batch["image"])
    person = focal_loss(out["person"], batch["person"])
    mask = batch["person_mask"]
    ltrb = at_cells(out["wh"], batch["center_cell"]) / CENTERNET_STRIDE  # (N, M, 4) pixels -> cells
    box = ((ltrb - batch["ltrb"]).abs().sum(2) * mask).sum() / mask.sum().clamp(min=1.0)
    return person + config.box_scale_loss_weight * box, {"person": person, "box": box}


def build_network(config: TrainConfig) -> torch.nn.Module:
    """The network a configuration names: today's heatmap PoseNet, a MoveNet or the MultiPose detector (random init)."""
    if config.network in MOVENET_CONFIGS:
        return MoveNet(MOVENET_CONFIGS[config.network])
    if config.network in DETECTOR_CONFIGS:
        return detector_network(config.network).build()
    if config.network != "heatmap":
        known = ["heatmap", *sorted(MOVENET_CONFIGS), *DETECTOR_CONFIGS]
        raise ValueError(f"train.network {config.network!r}: expected one of {known}")
    net_config = NetConfig(config.backbone, config.head_channels, backbone_checkpoint=config.backbone_checkpoint)
    return PoseNet(net_config)


class PoseModel(L.LightningModule):
    """PoseNet trained on heatmaps; `self.net` is what gets exported."""

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.config = TrainConfig.from_section(config)
        self.spec: InputSpec = self.config.input_spec
        self.net = build_network(self.config)
        self.output_kind = "movenet" if isinstance(self.net, MoveNet) else "heatmaps"
        for stage in getattr(self.net, "stages", [])[: self.config.frozen_stages]:
            stage.requires_grad_(False)
        if self.config.channels_last:  # before any strategy (DDP) wraps the parameters
            self.net.to(memory_format=torch.channels_last)
        self._fit_start = time.monotonic()
        self._val: list[dict[str, np.ndarray]] = []
        self.last_validation: dict[str, np.ndarray] = {}
        self._anchor: list[tuple[torch.nn.Parameter, torch.Tensor]] = []  # (parameter, its pretrained value)
        # (frozen pretrained network, real-photo crops, loss of the student's logits against its answers)
        self._distill: tuple[torch.nn.Module, RealCrops, DistillLoss] | None = None

    def on_fit_start(self) -> None:
        """With train.anchor_weight, remember the pretrained weights the fit is pulled back towards (L2-SP);
        with train.distill_weight, load the frozen pretrained network and the real photographs to distil on."""
        if self.config.anchor_weight > 0 and isinstance(self.net, MoveNet) and self.config.pretrained:
            reference = load_pretrained(self.config.pretrained).to(self.device)
            theirs = dict(reference.named_parameters())
            self._anchor = [(p, theirs[name].detach()) for name, p in self.net.named_parameters() if p.requires_grad]
        if self.config.distill_weight > 0 and isinstance(self.net, MoveNet) and self.config.pretrained:
            crops = RealCrops(pretrained.real_frames(), self.config.input_spec, seed=self.config.seed)
            self.distill_from(load_pretrained(self.config.pretrained), crops, distill_loss)

    def distill_from(self, teacher: torch.nn.Module, crops: RealCrops, loss: DistillLoss) -> None:
        """Distil from `teacher` (frozen here, in the student's memory format) on `crops` by `loss`."""
        teacher = teacher.to(self.device).eval().requires_grad_(False)
        if self.config.channels_last:
            teacher.to(memory_format=torch.channels_last)
        self._distill = (teacher, crops, loss)  # a tuple: the teacher is no submodule, never exported

    def real_crops(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]] | None:
        """distill_batch new real-photo crops and the frozen pretrained network's answers on them, or None
        without distillation."""
        if self._distill is None:
            return None
        teacher, crops, _ = self._distill
        return self._answered(teacher, crops)

    def _answered(self, teacher: torch.nn.Module, crops: RealCrops) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """distill_batch new crops (in the student's memory format) and the frozen teacher's answers on them."""
        images = crops.batch(self.config.distill_batch).to(self.device)
        if self.config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            return images, teacher(images)

    def distill_penalty(self) -> torch.Tensor | None:
        """distill_weight x how far the network answers new real-photo crops from the pretrained one, or None."""
        if self._distill is None:
            return None
        teacher, crops, loss = self._distill
        images, target = self._answered(teacher, crops)
        return self.config.distill_weight * loss(self.net.forward_logits(images), target)  # type: ignore[operator]

    def anchor_penalty(self) -> torch.Tensor | None:
        """anchor_weight x the squared distance of the weights from the pretrained ones, or None without an anchor."""
        if not self._anchor:
            return None
        distance = torch.stack([((p - ref) ** 2).sum() for p, ref in self._anchor]).sum()
        return self.config.anchor_weight * distance

    def forward(self, image: torch.Tensor) -> Any:
        return self.net(image)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        real = self.real_crops()  # only a MoveNet distils
        distill = None
        if real is None:
            loss, joints, accuracy = step_loss(self.net, batch, self.config)
        else:
            assert isinstance(self.net, MoveNet)
            loss, joints, unweighted = movenet_distilled_loss(self.net, batch, self.config, *real)
            distill, accuracy = self.config.distill_weight * unweighted, None
        penalty = self.anchor_penalty()
        if penalty is not None:
            self.log("train/anchor_penalty", penalty, on_step=True, on_epoch=False, batch_size=len(batch["image"]))
            loss = loss + penalty
        if distill is not None:
            self.log("train/distill_loss", distill, on_step=True, on_epoch=False, batch_size=self.config.distill_batch)
            loss = loss + distill
        if accuracy is not None:
            known = int((batch["facing"] != 0).sum())
            self.log("train/facing_accuracy", accuracy, on_step=False, on_epoch=True, batch_size=known)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(batch["image"]))
        self.log("train/joint_loss", joints, on_step=True, on_epoch=False, batch_size=len(batch["image"]))
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)  # type: ignore[union-attr]
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if isinstance(self.net, MoveNet):
            outputs = {k: v.float().cpu().numpy() for k, v in self.net(batch["image"]).items()}
            loss, _ = movenet_loss(self.net, batch, self.config)
        else:
            assert isinstance(self.net, PoseNet)
            canonical, logits = self.net.forward_parts(batch["image"])
            heatmaps = to_person_order(canonical, logits, self.net.flip_index)
            right = facing_accuracy(logits, batch["facing"])
            if right is not None:
                known = int((batch["facing"] != 0).sum())
                self.log("val/facing_accuracy", right, on_epoch=True, batch_size=known, sync_dist=True)
            loss = heatmap_loss(heatmaps, batch["heatmaps"], batch["weights"], self.config.foreground_weight)
            outputs = {"heatmaps": heatmaps.float().cpu().numpy()}
        self.log("val/loss", loss, on_epoch=True, batch_size=len(batch["image"]), sync_dist=True)
        windows = [tuple(w) for w in batch["window"].cpu().numpy().tolist()]
        points, scores = decode_outputs(outputs, windows, self.spec, self.output_kind)
        self._val.append(
            {
                "pred": points,
                "scores": scores,
                "gt": batch["keypoints"].cpu().numpy(),
                "box": batch["box"].cpu().numpy(),
                "index": batch["index"].cpu().numpy(),
            }
        )

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        merged = {k: np.concatenate([v[k] for v in self._val]) for k in self._val[0]}
        self.last_validation = merged
        metrics = {
            "val/pck@0.05": pck(merged["pred"], merged["gt"], merged["box"], 0.05),
            "val/pck@0.1": pck(merged["pred"], merged["gt"], merged["box"], 0.1),
            "val/mean_px_error": mean_px_error(merged["pred"], merged["gt"]),
        }
        self.log_dict(metrics, prog_bar=True, sync_dist=True)

    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> dict[str, torch.Tensor]:
        if self.config.channels_last:
            batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
        return batch

    def on_train_start(self) -> None:
        self._fit_start = time.monotonic()

    def progress(self) -> float:
        """How far along the run is, in [0, 1]: the larger of the step share and the time share."""
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        by_steps = self.global_step / total
        by_time = (time.monotonic() - self._fit_start) / (60.0 * self.config.max_minutes)
        return min(max(by_steps, by_time), 1.0)

    def lr_factor(self, step: int) -> float:
        """Linear warm-up over `warmup_steps`, then cosine from 1 to 0.02 over the progress."""
        warm = min(1.0, (step + 1) / max(self.config.warmup_steps, 1))
        return warm * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * self.progress())))

    def configure_optimizers(self) -> Any:
        trained = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trained, lr=self.config.lr, weight_decay=self.config.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def relative_adamw(net: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trained weights whose step is `config.lr` times each tensor's mean |weight|.

    The ported graph folded its BatchNorms: a few layers hold weights near 3e-4 fed by activations
    in the hundreds, and one plain Adam step of 1e-4 (the same size for every weight) multiplied the
    detector's loss by 3,000 on one batch; relative steps train smoothly.
    """
    trained = [p for p in net.parameters() if p.requires_grad]
    groups = [{"params": [p], "lr": config.lr * float(p.detach().abs().mean().clamp(min=1e-3))} for p in trained]
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


class DetectorModel(PoseModel):
    """A person detector (MoveNet MultiPose or CenterNet, train.network) fitted on whole images by its loss
    (`multipose_loss`, `centernet_loss`); `self.net` is exported.

    The pose model's optimiser, warm-up + cosine schedule and anchor; validation is the loss alone
    (detection is scored on the exported artifact, training/evaluate_persons.py).
    """

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        if self.config.network not in DETECTOR_CONFIGS:
            raise ValueError(f"train.network {self.config.network!r}: a detector is one of {list(DETECTOR_CONFIGS)}")
        self.detector: torch.nn.Module = self.net
        self.output_kind = self.config.network

    def detector_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if isinstance(self.net, CenterNet):
            return centernet_loss(self.net, batch, self.config)
        assert isinstance(self.net, MoveNetMultiPose)
        return multipose_loss(self.net, batch, self.config)

    def on_fit_start(self) -> None:
        """With train.anchor_weight, remember the pretrained detector's weights the fit is pulled back towards;
        with train.distill_weight (CenterNet), load it frozen and the real photographs to distil on."""
        if self.config.anchor_weight > 0 and self.config.pretrained:
            reference = detector_network(self.config.network).load_pretrained().to(self.device)
            theirs = dict(reference.named_parameters())
            self._anchor = [(p, theirs[name].detach()) for name, p in self.net.named_parameters() if p.requires_grad]
        if self.config.distill_weight > 0 and isinstance(self.net, CenterNet) and self.config.pretrained:
            spec, seed = self.config.input_spec, self.config.seed
            crops = RealCrops(pretrained.real_frames(), spec, seed=seed, side=SCENE_CROPS)
            loss = partial(centernet_distill_loss, stride=CENTERNET_STRIDE)
            self.distill_from(detector_network(self.config.network).load_pretrained(), crops, loss)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, terms = self.detector_loss(batch)
        size = len(batch["image"])
        penalty = self.anchor_penalty()
        if penalty is not None:
            self.log("train/anchor_penalty", penalty, on_step=True, on_epoch=False, batch_size=size)
            loss = loss + penalty
        distill = self.distill_penalty()
        if distill is not None:
            self.log("train/distill_loss", distill, on_step=True, on_epoch=False, batch_size=self.config.distill_batch)
            loss = loss + distill
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=size)
        self.log_dict({f"train/{k}_loss": v for k, v in terms.items()}, on_step=True, on_epoch=False, batch_size=size)
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)  # type: ignore[union-attr]
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, terms = self.detector_loss(batch)
        size = len(batch["image"])
        self.log("val/loss", loss, on_epoch=True, batch_size=size, sync_dist=True, prog_bar=True)
        self.log_dict({f"val/{k}_loss": v for k, v in terms.items()}, on_epoch=True, batch_size=size, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        return None

    def configure_optimizers(self) -> Any:
        optimizer = relative_adamw(self.detector, self.config)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


@torch.no_grad()
def recalibrate_batchnorm(net: torch.nn.Module, loader: Iterable[dict[str, torch.Tensor]], max_batches: int) -> int:
    """Recompute BatchNorm running statistics as a plain average over up to `max_batches` batches.

    After a short run the exponential running averages still lag the weights (they trail by ~10
    steps), and the exported model runs in eval mode on those statistics. Returns the batches used.
    """
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or max_batches <= 0:
        return 0
    was_training = net.training
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    device = next(net.parameters()).device
    net.train()
    used = 0
    for batch in loader:
        net(batch["image"].to(device))
        used += 1
        if used >= max_batches:
            break
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    net.train(was_training)
    return used
