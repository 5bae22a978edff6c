"""DVC stage `labels`: export the corrected labels from Label Studio into `data/feedback`.

    python -m flywheel.stages.labels        # run by `dvc repro` on every run (always_changed)

Unchanged labels give a byte-identical dataset, so nothing downstream reruns. With no Label Studio
configured it keeps the current snapshot (or writes an empty one) and says so; configured but
unreachable is an error: a silent empty export would look like "no labels" and hide the outage.
"""

from __future__ import annotations

import logging
import sys

from flywheel.pipeline import PipelinePaths
from posewheel import dataset
from posewheel.imagestore import ImageStore
from posewheel.settings import ProjectSettings

log = logging.getLogger("flywheel.labels")


def ensure_snapshot(paths: PipelinePaths) -> None:
    """Keep the current `data/feedback`; create an empty dataset when there is none yet."""
    if (paths.feedback / dataset.ANNOTATIONS_FILE).is_file():
        log.info("Label Studio is not configured: keeping the current snapshot in %s", paths.feedback)
        return
    dataset.save(dataset.Dataset(images=[], annotations=[], info={"description": "corrected labels"}), paths.feedback)
    log.info("Label Studio is not configured: wrote an empty feedback set to %s", paths.feedback)


def run(paths: PipelinePaths) -> int:
    from labeling.settings import LabelStudioSettings

    settings = LabelStudioSettings()
    if not settings.configured:
        ensure_snapshot(paths)
        return 0
    from labeling.coco_export import export_coco
    from labeling.labelstudio_client import connect
    from labeling.project import ensure_project

    try:
        client = connect(settings)
        project_id = ensure_project(client)
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is the same user-facing error
        log.error("Label Studio is configured at %s but unreachable: %s", settings.base_url, exc)
        return 1
    store = ImageStore(ProjectSettings(root=paths.root).image_store_dir)
    summary = export_coco(client, project_id, paths.feedback, store)
    log.info("exported %s", summary)
    return 0


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(run(PipelinePaths.from_settings()))


if __name__ == "__main__":
    main()
