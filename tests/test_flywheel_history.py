"""The production history keeps each model's real people, and `flywheel status` shows their drift over turns."""

from __future__ import annotations

from pathlib import Path

from flywheel.pipeline import ONE_PERSON_AGREEMENT, SMALL_PEOPLE_AGREEMENT, SMALL_PEOPLE_SERVED_AGREEMENT
from flywheel.promotion import HISTORY_FIELDS, append_history, read_history
from flywheel.status import FlywheelStatus, format_status

OLD_HEADER = "version,promoted_at,parent_version,feedback_labels,studio_oks_ap,street_oks_ap"


def _row(
    version: str, labels: int, street: float, one: float | None, small: float | None, served: float | None = None
) -> dict[str, object]:
    row: dict[str, object] = {"version": version, "feedback_labels": labels, "studio_oks_ap": 0.96}
    row["street_oks_ap"] = street
    if one is not None and small is not None:
        row |= {ONE_PERSON_AGREEMENT: one, SMALL_PEOPLE_AGREEMENT: small}
    if served is not None:
        row[SMALL_PEOPLE_SERVED_AGREEMENT] = served
    return row


def test_a_history_written_before_the_real_people_columns_is_rewritten_under_the_new_header(tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    path.write_text(f"{OLD_HEADER}\nm-1,2026-12-01T00:00:00+00:00,,0,0.9681,0.4672\n", encoding="utf-8")
    append_history(path, _row("m-2", 300, 0.53, 1.0, 0.927))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(HISTORY_FIELDS) and lines[0].startswith(OLD_HEADER + ",")
    rows = read_history(path)
    assert [r["version"] for r in rows] == ["m-1", "m-2"]
    assert rows[0]["street_oks_ap"] == "0.4672" and rows[0][SMALL_PEOPLE_AGREEMENT] == ""  # kept, not scored then
    assert rows[1][ONE_PERSON_AGREEMENT] == "1.0" and rows[1][SMALL_PEOPLE_AGREEMENT] == "0.927"
    append_history(path, _row("m-3", 600, 0.55, 0.98, 0.89))  # under today's header: appended, header once
    assert sum(line.startswith("version,") for line in path.read_text(encoding="utf-8").splitlines()) == 1
    assert len(read_history(path)) == 3


def test_status_shows_how_far_real_people_drifted_since_the_first_production_that_scored_them(tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    rows = [
        _row("m-0", 0, 0.40, None, None),  # an older row without the figures
        _row("m-1", 0, 0.467, 0.983, 0.983),
        _row("m-2", 300, 0.534, 1.0, 0.927),
        _row("m-3", 600, 0.553, 1.0, 0.895),
    ]
    for row in rows:
        append_history(path, row)
    text = format_status(FlywheelStatus(0, 0, 600, "m-3", history=read_history(path)))
    assert "real people since m-1: one-person 0.983 -> 1.000 (+0.017), small-people 0.983 -> 0.895 (-0.088)" in text
    assert "  m-0      0  0.96  0.4  -  -" in text  # shown, figures missing
    assert "  m-3    600  0.96  0.553  1.0  0.895  -" in text

    one = tmp_path / "one.csv"
    append_history(one, rows[1])
    assert "real people since" not in format_status(FlywheelStatus(0, 0, 0, "m-1", history=read_history(one)))


def test_the_small_people_as_served_drift_from_the_first_row_that_scored_them(tmp_path: Path) -> None:
    """Rows written before session 50 have no served figure: its drift starts where it was first recorded."""
    path = tmp_path / "history.csv"
    for row in (
        _row("m-1", 0, 0.467, 0.983, 0.983),
        _row("m-2", 300, 0.534, 1.0, 0.927, served=0.948),
        _row("m-3", 600, 0.553, 1.0, 0.895, served=0.939),
    ):
        append_history(path, row)
    assert read_history(path)[0][SMALL_PEOPLE_SERVED_AGREEMENT] == ""
    lines = format_status(FlywheelStatus(0, 0, 600, "m-3", history=read_history(path))).splitlines()
    assert "real people since m-1: one-person 0.983 -> 1.000 (+0.017), small-people 0.983 -> 0.895 (-0.088)" in lines
    assert "real people since m-2: small-people as served 0.948 -> 0.939 (-0.009)" in lines
    assert "  m-3    600  0.96  0.553  1.0  0.895  0.939" in lines


def test_status_shows_the_floor_the_last_candidate_was_held_to() -> None:
    decision = {
        "promoted": True,
        "reason": "street OKS AP +0.0690, ...: within the rule",
        "candidate_version": "m-2",
        "feedback_labels": 300,
        "floor": {"model": "movenet-lightning", "start": 0.950437, "fraction": 0.9},
    }
    lines = format_status(FlywheelStatus(0, 0, 300, "m-2", last_decision=decision)).splitlines()
    assert "  floor under the small people as served: 0.855 (0.9 of the pretrained movenet-lightning's 0.950)" in lines
    older = {k: v for k, v in decision.items() if k != "floor"}  # a decision written before session 51
    assert "floor" not in format_status(FlywheelStatus(0, 0, 300, "m-2", last_decision=older))
