"""The promote stage refuses a candidate that forgot real people, on real artifacts and the real check set.

Production is the pretrained MoveNet Lightning a fresh install serves; the candidate is the suite's small
from-scratch network, which has never seen a real person. Both holdouts are opened wide (any street gain, any
studio loss), so only the real-photo clause (`promote.real_tolerance`) can refuse it: the evaluate stage scores
the candidate on the check set, promote re-scores production there, and the rule reads both.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flywheel.pipeline import ONE_PERSON_AGREEMENT, REAL_PHOTOS, SMALL_PEOPLE_SERVED_AGREEMENT, PipelinePaths
from flywheel.promotion import REAL_PEOPLE, read_history, real_tolerance
from flywheel.stages import evaluate, promote
from posewheel import artifact
from posewheel.dataset import Dataset
from tests.support.flywheel import make_project

OPEN_RULE = {"street_margin": -1.0, "studio_tolerance": 1.0}


@pytest.mark.parametrize("tolerance", [0.1, None])
def test_a_candidate_that_forgot_real_people_is_refused_and_production_stays(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pretrained_artifact: Path,
    trained_artifact: Path,
    studio_set: Dataset,
    tolerance: float | None,
) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")  # the iteration's W&B run is tested with the whole loop
    rule = OPEN_RULE | {"real_tolerance": tolerance}  # null: the rule does not look at real photos
    paths = PipelinePaths(make_project(tmp_path / "project", {"promote": rule}).root)
    assert studio_set.root is not None
    for holdout in paths.holdouts().values():
        shutil.copytree(studio_set.root, holdout)
    paths.models.mkdir()
    shutil.copytree(pretrained_artifact, paths.models / pretrained_artifact.name)
    artifact.promote(paths.models, pretrained_artifact.name)
    shutil.copytree(trained_artifact, paths.candidate)

    evaluate.run(paths)
    record = promote.run(paths)

    candidate, production = record["candidate"], record["production"]
    assert isinstance(candidate, dict) and isinstance(production, dict)
    kept, forgot = production[REAL_PHOTOS][ONE_PERSON_AGREEMENT], candidate[REAL_PHOTOS][ONE_PERSON_AGREEMENT]
    assert kept >= 0.95 and forgot <= 0.2, (kept, forgot)  # the pretrained network agrees with itself
    # as served: its detector's crop of each small person, against its own whole-picture answers (0.950 measured)
    assert production[REAL_PHOTOS][SMALL_PEOPLE_SERVED_AGREEMENT] >= 0.9
    assert SMALL_PEOPLE_SERVED_AGREEMENT not in candidate[REAL_PHOTOS]  # the `cpu` network has no detector
    stored = json.loads(paths.promotion.read_text(encoding="utf-8"))
    if tolerance is None:  # the rule without the real photos promotes it
        assert record["promoted"] and stored["promoted"], record["reason"]
        assert artifact.production_version(paths.models) == artifact.load_card(trained_artifact).version
        (row,) = read_history(paths.history)  # the history keeps what it forgot, for `flywheel status` and the plot
        for key in REAL_PEOPLE:
            assert float(row[key]) == round(candidate[REAL_PHOTOS][key], 3), (key, row)
        return
    assert not record["promoted"] and not stored["promoted"]
    assert "one-person real-photo agreement loss" in str(record["reason"]), record["reason"]
    assert artifact.production_version(paths.models) == pretrained_artifact.name


def test_the_rule_reads_real_photos_only_where_production_starts_from_the_pretrained_network(
    pretrained_artifact: Path, trained_artifact: Path
) -> None:
    # a from-scratch network's agreement with the pretrained one is chance (0.03 one-person, 0.11 small people
    # for the suite's), which would refuse its candidates at random
    assert real_tolerance(0.1, pretrained_artifact) == 0.1
    assert real_tolerance(0.1, trained_artifact) is None
    assert real_tolerance(0.1, None) == 0.1  # no production yet: the first candidate is promoted anyway
    assert real_tolerance(None, pretrained_artifact) is None  # params.yaml's null
