"""DVC stage `evaluate`: score the candidate on both holdouts into `metrics/candidate`.

    python -m flywheel.stages.evaluate      # reads params.yaml:evaluate; run by `dvc repro`

Writes `metrics/candidate/{studio,street}.json` (DVC metrics) and `metrics/candidate/plots/*.csv`
(PCK curve, pixel error per joint), scored with ONNX Runtime on ground-truth boxes exactly as
`posewheel evaluate` does.
"""

from __future__ import annotations

import logging

from flywheel.pipeline import PipelinePaths
from posewheel.params import load_params, section

log = logging.getLogger("flywheel.evaluate")


def run(paths: PipelinePaths) -> dict[str, dict[str, float]]:
    """Evaluate `models/candidate` on every holdout; returns the metrics per holdout name."""
    from training.evaluate import write_evaluation

    batch_size = int(section(load_params(paths.root), "evaluate").get("batch_size", 64))
    results = write_evaluation(paths.candidate, list(paths.holdouts().values()), paths.candidate_metrics, batch_size)
    for name, values in results.items():
        log.info("%s: %s", name, " ".join(f"{k}={v:.4g}" for k, v in values.items()))
    return results


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(PipelinePaths.from_settings())


if __name__ == "__main__":
    main()
