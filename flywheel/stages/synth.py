"""DVC stage `synth`: the seed set (studio), the two fixed holdouts (studio, street), the street scenes and the
studio scenes the person detector fine-tunes on.

The street scenes (`synth.scenes_count` images of `synth.scene_persons` people, empty ones included)
are scored without boxes, as the server answers the demo's traffic (flywheel/stages/evaluate.py). The
studio scenes (`synth.seed_scenes_count`, as many people each) are the person detector's seed set: the
pose seed set has one person per image, centred (flywheel/stages/train.py).

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
HOLDOUT_SCENES_SEED_OFFSET = 4000
SEED_SCENES_SEED_OFFSET = 6000  # past the learning-curve experiment's street pools (flywheel/experiment.py)


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
    count, persons = int(params["scenes_count"]), scene_persons(params)
    scenes_seed = seed + HOLDOUT_SCENES_SEED_OFFSET
    generate(domain="street", count=count, seed=scenes_seed, out=paths.holdout_scenes, size=size, persons=persons)
    log.info("wrote %d street scenes of %d-%d people to %s", count, *persons, paths.holdout_scenes)
    count = int(params["seed_scenes_count"])
    generate(
        domain="studio",
        count=count,
        seed=seed + SEED_SCENES_SEED_OFFSET,
        out=paths.seed_scenes,
        size=size,
        persons=persons,
    )
    log.info("wrote %d studio scenes of %d-%d people to %s", count, *persons, paths.seed_scenes)


def scene_persons(params: dict[str, object]) -> tuple[int, int]:
    """`synth.scene_persons` ([lo, hi] people per street scene) as a pair; ValueError naming the key if not."""
    value = params.get("scene_persons")
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)):
        raise ValueError(f"params.yaml synth.scene_persons must be [lo, hi] people per image, got {value!r}")
    return value[0], value[1]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(PipelinePaths.from_settings())


if __name__ == "__main__":
    main()
