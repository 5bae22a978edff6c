"""The promote stage refuses a candidate that forgot real people, on real artifacts and the real check set.

Production is the pretrained MoveNet Lightning a fresh install serves; the candidate is the suite's small
from-scratch network, which has never seen a real person. Both holdouts are opened wide (any street gain, any
studio loss), so only the real-photo clauses can refuse it: the evaluate stage scores the candidate on the check
set, promote re-scores production there, and the rule reads both (`promote.real_tolerance`); given the pretrained
detector and start, promote also scores the pretrained network it names, rebuilt from the pinned weights, for the
floor under the small people as served (`promote.served_floor`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flywheel.pipeline import ONE_PERSON_AGREEMENT, REAL_PHOTOS, SMALL_PEOPLE_SERVED_AGREEMENT, PipelinePaths
from flywheel.promotion import REAL_PEOPLE, read_history, real_tolerance
from flywheel.stages import evaluate, promote
from flywheel.stages.promote import served_floor
from posewheel import artifact
from posewheel.dataset import Dataset
from tests.support.flywheel import make_project

OPEN_RULE = {"street_margin": -1.0, "studio_tolerance": 1.0, "served_floor": None}


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


def test_the_floor_refuses_a_candidate_that_serves_real_people_badly_against_the_pretrained_start_scored_now(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pretrained_artifact: Path,
    trained_artifact: Path,
    studio_set: Dataset,
) -> None:
    # The suite's from-scratch network given the pretrained detector and lineage: it serves the small people through
    # the detector's crops and has never seen a real person. With real_tolerance off only the floor reads them.
    monkeypatch.setenv("WANDB_MODE", "disabled")
    rule = OPEN_RULE | {"real_tolerance": None, "served_floor": 0.9}
    paths = PipelinePaths(make_project(tmp_path / "project", {"promote": rule}).root)
    assert studio_set.root is not None
    for holdout in [*paths.holdouts().values(), paths.holdout_scenes]:  # a detector: the scenes are scored too
        shutil.copytree(studio_set.root, holdout)
    paths.models.mkdir()
    shutil.copytree(pretrained_artifact, paths.models / pretrained_artifact.name)
    artifact.promote(paths.models, pretrained_artifact.name)
    shutil.copytree(trained_artifact, paths.candidate)
    pretrained = artifact.load_card(pretrained_artifact)
    assert pretrained.detector is not None
    shutil.copy2(pretrained_artifact / pretrained.detector.file, paths.candidate / pretrained.detector.file)
    card = artifact.load_card(paths.candidate)
    card.detector, card.pretrained = pretrained.detector, pretrained.pretrained
    artifact.save_card(paths.candidate, card)

    evaluate.run(paths)
    record = promote.run(paths)

    assert not record["promoted"], record["reason"]
    assert "below the floor" in str(record["reason"]) and "movenet-lightning" in str(record["reason"])
    candidate, production, floor = record["candidate"], record["production"], record["floor"]
    assert isinstance(candidate, dict) and isinstance(production, dict) and isinstance(floor, dict)
    served = candidate[REAL_PHOTOS][SMALL_PEOPLE_SERVED_AGREEMENT]
    assert served < 0.5, served  # chance, through the real detector's crops
    # the start is the pretrained Lightning rebuilt from the cache and scored now: production is that same network
    start = production[REAL_PHOTOS][SMALL_PEOPLE_SERVED_AGREEMENT]
    assert abs(floor["start"] - start) <= 1 / 343 and 0.9 <= start <= 1.0, (floor, start)  # one keypoint of 343
    assert floor["fraction"] == 0.9 and floor["model"] == "movenet-lightning"
    assert artifact.production_version(paths.models) == pretrained_artifact.name


@pytest.mark.parametrize("setting", [1.5, 0, "0.9", True])
def test_a_floor_that_is_not_a_fraction_is_a_clear_error(pretrained_artifact: Path, setting: object) -> None:
    with pytest.raises(ValueError, match=r"promote.served_floor must be a fraction in \(0, 1\] or null"):
        served_floor(setting, artifact.load_card(pretrained_artifact))


def test_no_floor_where_nothing_is_served_through_a_detector_or_nothing_real_was_known(
    pretrained_artifact: Path, trained_artifact: Path
) -> None:
    assert served_floor(None, artifact.load_card(pretrained_artifact)) is None  # params.yaml's null
    assert served_floor(0.9, artifact.load_card(pretrained_artifact), production=False) is None  # the first model
    with pytest.raises(ValueError, match="served_floor"):  # a bad setting is told on the first run too
        served_floor(2, artifact.load_card(pretrained_artifact), production=False)
    assert served_floor(0.9, artifact.load_card(trained_artifact)) is None  # the `cpu` network: neither
    no_detector = artifact.load_card(pretrained_artifact)
    no_detector.detector = None
    assert served_floor(0.9, no_detector) is None
