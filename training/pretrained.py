"""Artifacts made from pretrained weights alone (no training): `posewheel pretrained promote`.

from training.pretrained import export_pretrained
folder = export_pretrained("movenet-lightning", Path("models"))   # models/pretrained-movenet-lightning
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from posewheel import pretrained
from training.artifact_export import pretrained_detector, write_artifact
from training.config import TrainConfig
from training.movenet import load_pretrained


def export_pretrained(name: str, models_dir: Path) -> Path:
    """Write `models_dir/pretrained-<name>`: the ported network with its original weights, card with provenance."""
    config = TrainConfig.from_section({"config": name, "wandb": False})
    net = load_pretrained(name)
    version = f"pretrained-{name}"
    params = {**config.to_dict(), "note": "pretrained weights only, not trained by this project"}
    source = pretrained.source(name).model_dump()
    with tempfile.TemporaryDirectory() as scratch:
        detector = pretrained_detector(Path(scratch), config.detector) if config.detector else None
        folder = Path(models_dir) / version
        return write_artifact(
            folder, net, config.input_spec, version, {}, params, kind="movenet", pretrained=source, detector=detector
        )
