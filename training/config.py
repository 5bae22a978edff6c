"""Training configuration: params.yaml's `train` section on top of a named size configuration.

    from posewheel.params import load_params
    from training.config import TrainConfig
    config = TrainConfig.from_params(load_params())                  # a first model
    config = TrainConfig.from_params(load_params(), fine_tune=True)  # a fine-tune: finetune_* keys win

`posewheel train` and the DVC `train` stage both build their run this way. params.yaml is where the
defaults live; the field defaults below carry the same values (tests/test_training.py checks it) so
that a configuration built in a test or a notebook without params.yaml trains the same run.

Sizes are data, not branches: `cpu` (MobileNetV3-Large, 128x96 input) trains on a laptop's two
cores; `gpu` (ResNet-50, 256x192) is the accuracy configuration; `centernet` and `movenet-multipose`
are the person detectors' fine-tunes (`TrainConfig.for_detector(load_params(), kind=...)`, params.yaml's
`detector` section).
Accelerator, devices, precision, strategy (`ddp`) and `num_nodes` pass straight through to the
Lightning Trainer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from posewheel.decoding import InputSpec
from posewheel.params import ParamsError, load_params

__all__ = [
    "CENTERNET",
    "DETECTOR_CONFIGS",
    "FINETUNE_PREFIX",
    "MULTIPOSE",
    "SIZE_CONFIGS",
    "ConfigError",
    "TrainConfig",
    "load_params",
]

# params.yaml `train.finetune_<key>` replaces `train.<key>` when a run fine-tunes an existing model.
FINETUNE_PREFIX = "finetune_"

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
MOVENET_MEAN, MOVENET_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)  # its graph maps pixels to [-1, 1]

# What every heatmap-network configuration states (the defaults below are MoveNet's, as in params.yaml).
HEATMAP: dict[str, Any] = {
    "network": "heatmap",
    "pretrained": None,
    "detector": None,
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
    "whole_image_padding": None,
}

# Named size configurations; params.yaml's `train` keys override any of these fields.
SIZE_CONFIGS: dict[str, dict[str, Any]] = {
    "cpu": {**HEATMAP, "backbone": "mobilenet_v3_large", "input_height": 128, "input_width": 96, "head_channels": 64},
    "gpu": {**HEATMAP, "backbone": "resnet50", "input_height": 256, "input_width": 192, "head_channels": 256},
    # Google's COCO-pretrained MoveNet (training/movenet.py), weights from `posewheel pretrained fetch`
    "movenet-lightning": {
        "network": "movenet-lightning",
        "pretrained": "movenet-lightning",
        "input_height": 192,
        "input_width": 192,
        "mean": MOVENET_MEAN,
        "std": MOVENET_STD,
        "whole_image_padding": 1.0,  # a request without boxes: the whole image, as MoveNet was trained
        "detector": "centernet",
    },
    "movenet-thunder": {
        "network": "movenet-thunder",
        "pretrained": "movenet-thunder",
        "input_height": 256,
        "input_width": 256,
        "mean": MOVENET_MEAN,
        "std": MOVENET_STD,
        "whole_image_padding": 1.0,  # a request without boxes: the whole image, as MoveNet was trained
        "detector": "centernet",
    },
    # the person detector (training/multipose.py), fine-tuned on whole images: `posewheel train-detector`,
    # params.yaml's `detector` section (TrainConfig.for_detector); docs/detector.md
    "movenet-multipose": {
        "network": "movenet-multipose",
        "pretrained": "movenet-multipose",
        "detector": None,
        "input_height": 256,
        "input_width": 256,
        "mean": MOVENET_MEAN,
        "std": MOVENET_STD,
        "whole_image_padding": 1.0,
        "rotation": 0.0,  # whole-image augmentation has none: boxes stay the persons' boxes
        "scale": (0.6, 1.5),  # zoom of the whole-image window: below 1 people get smaller, above 1 larger
        "translate": 0.15,
        "max_minutes": 8.0,
        "batch_size": 8,
        "lr": 3e-3,  # relative: a step is this share of each tensor's mean |weight| (lightning_module.relative_adamw)
        "warmup_steps": 20,
        "regress_loss_weight": 1.0,  # CenterNet's for the joint regression of several persons
        # the backbone's first three stages keep Google's features: faster steps, less forgetting; training
        # the third too (at lr 1e-2) diverged within 40 steps, freezing all four learned less (docs/detector.md)
        "frozen_stages": 3,
        "bn_recalibration_batches": 0,  # its BatchNorms were folded into the convolutions
    },
    # the COCO person detector (training/centernet.py), fine-tuned on whole images like the one above
    "centernet": {
        "network": "centernet",
        "pretrained": "centernet",
        "detector": None,
        "input_height": 512,
        "input_width": 512,
        "mean": (0.0, 0.0, 0.0),
        "std": (1 / 255.0, 1 / 255.0, 1 / 255.0),  # the graph takes RGB 0..255
        "whole_image_padding": 1.0,
        "rotation": 0.0,
        "scale": (0.6, 1.5),
        "translate": 0.15,
        "max_minutes": 8.0,
        "batch_size": 8,
        "lr": 3e-3,  # relative, as above: its BatchNorms are folded too
        "warmup_steps": 20,
        "box_scale_loss_weight": 0.1,  # the box distances' L1, cells
        # real-photo distillation keeps real people's scores (docs/detector.md): a 3-min fine-tune on studio
        # scenes still counts 14 of 14 real photographs right at 0.3 (benchmarks/multi_person.py)
        "distill_weight": 1.0,
        "frozen_stages": 3,
        "bn_recalibration_batches": 0,
    },
}
MULTIPOSE, CENTERNET = "movenet-multipose", "centernet"
DETECTOR_CONFIGS = (CENTERNET, MULTIPOSE)  # a `detector` section's config: the artifact's detector kind
# `train` keys a `detector` section inherits when it does not set them: the hardware and the logging.
DETECTOR_INHERITS = ("accelerator", "devices", "precision", "strategy", "num_nodes", "num_workers", "seed", "wandb")
TUPLE_FIELDS = ("scale", "upper_keep", "mean", "std")  # tuples here, YAML and JSON lists outside


class ConfigError(ParamsError):
    """A training parameter is missing, unknown or out of range (the message names which)."""


@dataclass
class TrainConfig:
    """Every knob of one training run; units in the field comments."""

    config: str = "movenet-lightning"  # name of the size configuration these fields started from
    network: str = "movenet-lightning"  # heatmap | movenet-lightning | movenet-thunder | movenet-multipose (detector)
    pretrained: str | None = "movenet-lightning"  # posewheel.pretrained weights a first model starts from
    # the person detector a new artifact carries (training/detectors.py); a fine-tune keeps its parent's
    detector: str | None = "centernet"
    backbone: str = "mobilenet_v3_large"  # torchvision model name, built from scratch
    backbone_checkpoint: str | None = None  # optional local state dict for the backbone (no downloads)
    input_height: int = 192  # pixels
    input_width: int = 192  # pixels
    head_channels: int = 64  # heatmap network only
    mean: tuple[float, float, float] = MOVENET_MEAN  # input normalisation of RGB in [0, 1]
    std: tuple[float, float, float] = MOVENET_STD
    sigma: float = 1.5  # Gaussian target std, heatmap cells
    foreground_weight: float = 10.0  # loss weight of a heatmap peak pixel relative to background
    regress_loss_weight: float = 0.1  # MoveNet: weight of the centre-to-joint regression's L1 (cells)
    box_scale_loss_weight: float = 0.1  # detector: weight of the box size's L1 (cells), as CenterNet's
    anchor_weight: float = 0.0  # MoveNet: L2 pull of the weights towards the pretrained ones (less forgetting)
    distill_weight: float = 1.0  # MoveNet: weight of answering real photos as the pretrained net (training/distill.py)
    distill_batch: int = 8  # real-photo crops per step when distill_weight > 0
    # a warm-started run exports parent + interpolation x (fine-tuned - parent), WiSE-FT (training/train.py)
    interpolation: float = 1.0
    facing_loss_weight: float = 0.05  # weight of the facing classifier's cross-entropy (training/model.py)
    occluded_weight: float = 1.0  # loss weight of v=1 joints (v=2: 1, v=0: 0)
    whole_image_padding: float | None = 1.0  # crop of a whole-image sample (and request); None: 1.25
    whole_image_fraction: float = 0.3  # share of samples of persons alone in their image cropped from the whole image
    # share of samples of a crowded person (another labeled box more than a tenth inside their crop window) blanked
    # outside their own box, as the server reads them (posewheel.detection.read_alone); params.yaml says why 1
    alone_fraction: float = 1.0
    # augmentation
    upper_fraction: float = 0.0  # share of samples cropped to the top of the person's box (portrait framing)
    upper_keep: tuple[float, float] = (0.3, 0.65)  # share of the box's height such a crop keeps, lo and hi
    flip: float = 0.5  # probability
    rotation: float = 30.0  # degrees, +-
    scale: tuple[float, float] = (0.75, 1.25)
    translate: float = 0.08  # fraction of the crop size
    color_jitter: float = 0.3  # brightness/contrast/saturation strength
    blur: float = 0.2  # probability of a Gaussian blur
    # optimisation
    max_minutes: float = 8.5  # wall clock for the fit (stops between batches)
    epochs: int = 200  # an upper bound: max_minutes usually ends the run first
    batch_size: int = 32
    lr: float = 2e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    channels_last: bool = True  # NHWC activations: 1.31x img/s on 2 CPU cores (benchmarks/train_throughput.py)
    frozen_stages: int = 0  # backbone stages (of 4, input side first) whose weights stay as they are
    bn_recalibration_batches: int = 10  # after the fit, BatchNorm statistics are re-averaged over these
    val_fraction: float = 0.05  # of the first dataset, held out for per-epoch validation
    max_val: int = 256  # validation persons at most
    num_workers: int = 2
    seed: int = 0
    feedback_weight: float = 10.0  # default sampling weight of extra datasets (corrected labels)
    warm_start: bool = True
    # distribution (Lightning does it)
    accelerator: str = "auto"
    devices: int | str = "auto"
    precision: str = "32-true"
    strategy: str = "auto"
    num_nodes: int = 1
    # logging
    wandb: bool = True
    worst_examples: int = 16  # rows of the W&B table of worst validation examples
    extra: dict[str, Any] = field(default_factory=dict)  # params.yaml keys this class does not use

    @property
    def input_spec(self) -> InputSpec:
        """The network input the artifact is served with."""
        return InputSpec(
            width=self.input_width,
            height=self.input_height,
            mean=self.mean,
            std=self.std,
            whole_image_padding=self.whole_image_padding,
        )

    @classmethod
    def from_params(cls, params: dict[str, Any], *, fine_tune: bool = False, **overrides: Any) -> TrainConfig:
        """The configuration of one run from params.yaml (its `train` section), keyword overrides last.

        A fine-tune of an existing model (`fine_tune=True`) takes each `finetune_<key>` in place of
        `<key>` (its own minutes and learning rate); a first model ignores them.
        """
        section = cls._tuned(dict(params.get("train", params) or {}), "train", fine_tune)
        section.update(overrides)
        return cls.from_section(section)

    @classmethod
    def _tuned(cls, section: dict[str, Any], name: str, fine_tune: bool) -> dict[str, Any]:
        """`section`; for a fine-tune, with each `finetune_<key>` value in place of `<key>`'s."""
        tuned = {k.removeprefix(FINETUNE_PREFIX): v for k, v in section.items() if k.startswith(FINETUNE_PREFIX)}
        unknown = sorted(set(tuned) - cls.field_names())
        if unknown:
            raise ConfigError(f"{name}.{FINETUNE_PREFIX}{unknown[0]}: {unknown[0]!r} is not a training parameter")
        return {**section, **tuned} if fine_tune else section

    @classmethod
    def for_detector(
        cls, params: dict[str, Any], kind: str = CENTERNET, *, fine_tune: bool = False, **overrides: Any
    ) -> TrainConfig:
        """The fine-tune of a detector of `kind` (one of DETECTOR_CONFIGS: the artifact's `detector.kind`) from
        params.yaml's `detector` section (all optional), inheriting DETECTOR_INHERITS from `train`;
        keyword overrides last. `fine_tune`: the detector of a loop's candidate, which continues from
        production's, takes the section's `finetune_<key>` in place of `<key>` as from_params does. The
        section's `fine_tune` switch (whether the train stage runs the detector's fine-tune at all) is the
        stage's, not a training parameter: it is left out."""
        if kind not in DETECTOR_CONFIGS:
            raise ConfigError(f"detector {kind!r}: expected one of {list(DETECTOR_CONFIGS)}")
        train = dict(params.get("train") or {})
        section = {k: train[k] for k in DETECTOR_INHERITS if k in train}
        switched = {k: v for k, v in dict(params.get("detector") or {}).items() if k != "fine_tune"}
        detector = cls._tuned(switched, "detector", fine_tune)
        section.update({"config": kind, **detector, **overrides})
        config = cls.from_section(section)
        if config.network != kind:
            raise ConfigError(f"detector.network is {config.network!r}; the artifact's detector is {kind!r}")
        return config

    @classmethod
    def field_names(cls) -> set[str]:
        """The training parameters this class knows (every field but `extra`)."""
        return {f.name for f in dataclasses.fields(cls)} - {"extra"}

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> TrainConfig:
        """Build from a `train` section: the named size config first, then the section's keys."""
        name = str(section.get("config", cls.config))
        if name not in SIZE_CONFIGS:
            raise ConfigError(f"train.config is {name!r}; expected one of {sorted(SIZE_CONFIGS)}")
        known = cls.field_names()
        values: dict[str, Any] = {"config": name, **SIZE_CONFIGS[name]}
        extra: dict[str, Any] = {}
        for key, value in section.items():
            (values if key in known else extra)[key] = value
        for key in TUPLE_FIELDS:
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        config = cls(**values, extra=extra)
        config.check()
        return config

    def check(self) -> None:
        """Raise ConfigError naming the first field out of range."""
        if self.input_height % 32 or self.input_width % 32:
            size = f"{self.input_height}x{self.input_width}"
            raise ConfigError(f"train.input_height/input_width must be multiples of 32, got {size}")
        for name in ("batch_size", "epochs", "num_nodes"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_minutes <= 0 or self.lr <= 0:
            raise ConfigError(f"train.max_minutes and train.lr must be positive, got {self.max_minutes}, {self.lr}")
        if not 0.0 < self.interpolation <= 1.0:
            raise ConfigError(f"train.interpolation must be in (0, 1] (1: no mixing), got {self.interpolation}")
        if not 0 <= int(self.frozen_stages) <= 4:
            raise ConfigError(f"train.frozen_stages must be in 0..4, got {self.frozen_stages}")
        if not 0.0 <= self.whole_image_fraction <= 1.0 or not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError("train.whole_image_fraction must be in [0, 1] and train.val_fraction in [0, 1)")
        if not 0.0 <= self.alone_fraction <= 1.0:
            raise ConfigError(f"train.alone_fraction must be in [0, 1], got {self.alone_fraction}")
        lo, hi = self.upper_keep
        if not 0.0 <= self.upper_fraction <= 1.0 or not 0.0 < lo <= hi <= 1.0:
            raise ConfigError(
                f"train.upper_fraction must be in [0, 1] and train.upper_keep 0 < lo <= hi <= 1,"
                f" got {self.upper_fraction} and {list(self.upper_keep)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the model card and W&B (tuples become lists)."""
        out = dataclasses.asdict(self)
        for key in TUPLE_FIELDS:
            out[key] = list(getattr(self, key))
        return out
