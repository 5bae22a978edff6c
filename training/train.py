"""Train a pose model and export it as an artifact folder `models/<version>`.

One CPU (the default `cpu` size, about 20 minutes on two cores):
    posewheel train --data data/seed --data data/feedback:3
One GPU (params.yaml: train.config: gpu, accelerator: gpu, precision: 16-mixed):
    posewheel train --params params.yaml --data data/seed
Several GPUs / nodes (train.strategy: ddp, devices: 4, num_nodes: 2; launch per node as Lightning
documents, e.g. with torchrun or SLURM):
    posewheel train --data data/seed
Fine-tune the production model as the flywheel's `train` stage does (train.finetune_* and
train.feedback_weight from params.yaml):
    posewheel train --data data/seed --data data/feedback --warm-start auto
Start from Google's COCO-pretrained MoveNet (params.yaml: train.config: movenet-lightning; the
weights come from `posewheel pretrained fetch`, and the card records where from):
    posewheel train --data data/seed
"""

from __future__ import annotations

import logging
import sys
import tempfile
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.loggers import Logger

from posewheel import pretrained
from posewheel.artifact import DetectorCard, check_version, load_card
from posewheel.settings import ProjectSettings
from training import run_logging
from training.artifact_export import dataset_hash, inherited_detector, load_weights, pretrained_detector, write_artifact
from training.config import TrainConfig
from training.data import PoseDataModule
from training.lightning_module import PoseModel, recalibrate_batchnorm
from training.movenet import MoveNet, load_tfjs_state, read_tfjs_weights

log = logging.getLogger(__name__)


def _not_a_tip(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("💡 Tip")


def quiet_lightning() -> None:
    """Drop what Lightning prints that nobody running this project can act on; each filter says why."""
    # Lightning gives the `lightning` logger its own stderr handler on import, besides the root logger's
    # (the CLI's, the demo's log file): every one of its lines printed twice.
    logging.getLogger("lightning").handlers.clear()
    # Advertisements for Lightning's cloud products ("💡 Tip: ... litlogger", "... litmodels").
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_not_a_tip)
    # Lightning's own code uses torch's deprecated LeafSpec: a Lightning release fixes it, not our users.
    warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)
    # PoseModel's on_after_batch_transfer (channels_last on the device) is meant to run beside a DataModule;
    # Lightning warns that the module's hook is the one used, which is the intent.
    warnings.filterwarnings("ignore", r"You have overridden `on_after_batch_transfer` in `LightningModule`")
    # log_every_n_steps is fixed (make_trainer); on a set of fewer batches the epoch values are still logged.
    warnings.filterwarnings("ignore", r"The number of training batches \(\d+\) is smaller than the logging interval")
    # metrics/train is the DVC plot each run rewrites (dvc.yaml): the CSV logger's "will be deleted" is the design.
    warnings.filterwarnings("ignore", r"Experiment logs directory .* exists and is not empty")


def default_version(now: datetime | None = None) -> str:
    """A version name from the UTC time, like `m-20261125-231500`."""
    return (now or datetime.now(UTC)).strftime("m-%Y%m%d-%H%M%S")


def load_pretrained_weights(net: torch.nn.Module, name: str) -> dict[str, str]:
    """Load the cached pretrained weights `name` into `net` (a MoveNet); returns their provenance for the card."""
    if not isinstance(net, MoveNet) or net.config.name != name:
        raise ValueError(f"train.pretrained {name!r} does not fit train.network {getattr(net, 'config', None)}")
    load_tfjs_state(net, read_tfjs_weights(pretrained.model_json(name)))
    return pretrained.source(name).model_dump()


def train(
    config: TrainConfig,
    datasets: list[tuple[Path, float]],
    models_dir: Path,
    warm_start: Path | None = None,
    version: str | None = None,
    log_dir: Path | None = None,
) -> Path:
    """Fit on the weighted `datasets` ((folder, sampling weight) pairs) and export `models_dir/<version>`.

    Stops after `config.epochs` or `config.max_minutes` of wall clock, whichever comes first.
    `warm_start`: an artifact folder whose `weights.pt` initialises the network; its version is
    recorded as the new card's `parent_version`. `log_dir`: where the CSV log (`metrics.csv`, for
    `dvc plots`) goes; default `metrics/train` of the project. Returns the artifact folder.
    """
    quiet_lightning()
    version = check_version(version or default_version())
    folder = Path(models_dir) / version
    L.seed_everything(config.seed, workers=True)
    datamodule = PoseDataModule(config, datasets)
    datamodule.setup("fit")
    if not datamodule.val_items:
        log.info(
            "no validation during training: val_fraction %s of %s holds out no image",
            config.val_fraction,
            datasets[0][0],
        )
    model = PoseModel(config.to_dict())
    parent, lineage = starting_weights(model, config, warm_start)
    data = {str(path): dataset_hash(Path(path)) for path, _ in datasets}
    run_config = {
        **config.to_dict(),
        "data": data,
        "data_weights": {str(p): w for p, w in datasets},
        "parent_version": parent,
        "pretrained": lineage,
        "version": version,
    }
    project = ProjectSettings()
    csv_dir = Path(log_dir) if log_dir is not None else project.metrics_dir / "train"
    loggers = run_logging.make_loggers(version, csv_dir, config.wandb, run_config)
    trainer = make_trainer(config, loggers, project.var_dir / "lightning", validate=bool(datamodule.val_items))
    trainer.fit(model, datamodule=datamodule)
    recalibrate_batchnorm(model.net, datamodule.train_dataloader(), config.bn_recalibration_batches)
    if warm_start is not None and config.interpolation < 1.0:
        interpolate_towards(model.net, load_weights(warm_start), config.interpolation)
    if datamodule.val_items:
        trainer.validate(model, datamodule=datamodule, verbose=False)  # the final weights, for the table
    if trainer.is_global_zero:
        with tempfile.TemporaryDirectory() as scratch:
            write_artifact(
                folder,
                model.net,
                config.input_spec,
                version,
                data,
                config.to_dict(),
                parent_version=parent,
                kind=model.output_kind,
                pretrained=lineage,
                detector=artifact_detector(config, warm_start, Path(scratch)),
            )
        log_outputs_to_wandb(loggers, model, datamodule, config, folder)
        log.info("trained %s in %d steps; artifact at %s", version, trainer.global_step, folder)
    return folder


def starting_weights(
    model: PoseModel, config: TrainConfig, warm_start: Path | None
) -> tuple[str | None, dict[str, Any] | None]:
    """Load the warm start's weights (or the configured pretrained ones) into `model.net`.

    Returns the parent version (None without a warm start) and the pretrained lineage for the card.
    """
    if warm_start is None:
        return None, load_pretrained_weights(model.net, config.pretrained) if config.pretrained else None
    parent_card = load_card(warm_start)
    lineage = parent_card.pretrained.model_dump() if parent_card.pretrained else None
    try:
        model.net.load_state_dict(load_weights(warm_start))
    except RuntimeError as exc:
        first_line = str(exc).splitlines()[0]
        raise ValueError(
            f"warm start {warm_start}: its weights do not fit backbone {config.backbone!r} "
            f"with head_channels={config.head_channels}: {first_line}"
        ) from exc
    return parent_card.version, lineage


def interpolate_towards(net: torch.nn.Module, parent: dict[str, torch.Tensor], share: float) -> None:
    """Keep `share` of what the fine-tune changed: every float weight becomes parent + share x (tuned - parent).

    Weight-space ensembling of a fine-tune with its start (WiSE-FT, Wortsman et al., CVPR 2022): the
    fine-tune's gain on its data falls off slowly as `share` drops while what the start knew (here,
    real people) comes back quickly (benchmarks/finetune_interpolate.py, docs/real-photos.md).
    """
    tuned = net.state_dict()
    mixed = {k: parent[k] + share * (v - parent[k]) if v.is_floating_point() else v for k, v in tuned.items()}
    net.load_state_dict(mixed)


def artifact_detector(config: TrainConfig, warm_start: Path | None, scratch: Path) -> tuple[Path, DetectorCard] | None:
    """The person detector the new artifact carries: its parent's, else the configured pretrained one, else none."""
    inherited = inherited_detector(warm_start) if warm_start is not None else None
    if inherited is None and config.detector:
        return pretrained_detector(scratch, config.detector)
    return inherited


def make_trainer(config: TrainConfig, loggers: list[Logger], root_dir: Path, validate: bool = True) -> L.Trainer:
    """The Lightning Trainer of `config`: its limits, hardware and distribution, no checkpoints.

    `validate` False: no validation loop (a data set too small to hold any out, where Lightning would warn that
    the validation loader is empty).
    """
    return L.Trainer(
        max_epochs=config.epochs,
        max_time=timedelta(minutes=config.max_minutes),
        accelerator=config.accelerator,
        devices=config.devices,
        precision=config.precision,  # type: ignore[arg-type]
        strategy=config.strategy,
        num_nodes=config.num_nodes,
        logger=loggers,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        limit_val_batches=None if validate else 0,
        log_every_n_steps=10,
        enable_progress_bar=sys.stderr.isatty(),
        enable_model_summary=False,
        default_root_dir=str(root_dir),
    )


def log_outputs_to_wandb(
    loggers: list[Logger], model: PoseModel, datamodule: PoseDataModule, config: TrainConfig, folder: Path
) -> None:
    """When W&B is on: the worst validation examples, the artifact and its card; then finish the run."""
    wandb_run = run_logging.wandb_logger(loggers)
    if wandb_run is None:
        return
    table = None
    val = model.last_validation
    if val and config.worst_examples > 0:
        people = [datamodule.val_items[i] for i in val["index"]]
        images = [(p.image_path, (p.width, p.height)) for p in people]
        table = run_logging.worst_examples_table(images, val["pred"], val["gt"], val["box"], config.worst_examples)
    run_logging.log_run_outputs(wandb_run, table, folder, load_card(folder).model_dump(mode="json"))
    wandb_run.experiment.finish()
