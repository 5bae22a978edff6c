"""DVC stage `synth`: the seed set (studio) and the two fixed holdouts (studio, street).

    python -m flywheel.stages.synth         # reads params.yaml:synth; run by `dvc repro`

Seeds are offset per set so that no image is in two sets; the demo's street traffic uses yet another
offset (TRAFFIC_SEED_OFFSET), so the street holdout never overlaps the labels it is judged against.
"""

from __future__ import annotations

import logging

from flywheel.pipeline import PipelinePaths
from posewheel.params import load_params
from posewheel.settings import ProjectSettings

log = logging.getLogger("flywheel.synth")

HOLDOUT_STUDIO_SEED_OFFSET = 1000
HOLDOUT_STREET_SEED_OFFSET = 2000
TRAFFIC_SEED_OFFSET = 3000


def run(paths: PipelinePaths) -> None:
    from posewheel.synth import generate

    params = load_params(paths.root)["synth"]
    seed, size = int(params["seed"]), int(params["image_size"])
    truth_dir = ProjectSettings(root=paths.root).truth_dir
    sets = [
        ("studio", int(params["seed_count"]), seed, paths.seed),
        ("studio", int(params["holdout_count"]), seed + HOLDOUT_STUDIO_SEED_OFFSET, paths.holdout_studio),
        ("street", int(params["holdout_count"]), seed + HOLDOUT_STREET_SEED_OFFSET, paths.holdout_street),
    ]
    for domain, count, set_seed, out in sets:
        generate(domain=domain, count=count, seed=set_seed, out=out, truth_dir=truth_dir, size=size)
        log.info("wrote %d %s images to %s", count, domain, out)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(PipelinePaths.from_settings())


if __name__ == "__main__":
    main()
