"""The core commands (synth, show, validate) do their job and refuse bad input with one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from posewheel import cli, synth_cli
from posewheel.dataset import Dataset


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """A fresh app holding exactly the core commands (the shared `cli.app` is left alone)."""
    core = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
    core.command()(cli.validate)
    synth_cli.register(core)
    return core


def _run(app: typer.Typer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_synth_writes_a_valid_dataset_and_truth(app: typer.Typer, tmp_path: Path) -> None:
    where = ["--out", str(tmp_path / "set"), "--truth-dir", str(tmp_path / "truth")]
    code, out = _run(app, "synth", "--domain", "street", "--count", "5", "--seed", "2", "--size", "96", *where)
    assert code == 0, out
    assert "5 street images (96x96)" in out
    assert len(list((tmp_path / "truth").rglob("*.json"))) == 5
    code, out = _run(app, "validate", str(tmp_path / "set"))
    assert code == 0 and "valid: 5 images, 5 persons" in out


def test_show_draws_a_grid_of_the_requested_size(app: typer.Typer, studio_set: Dataset, tmp_path: Path) -> None:
    grid = tmp_path / "grid.png"
    code, out = _run(
        app, "show", str(studio_set.root), "--out", str(grid), "--count", "6", "--columns", "3", "--cell", "128"
    )
    assert code == 0, out
    with Image.open(grid) as image:
        assert image.size == (3 * 128, 2 * 128)
        assert len(set(image.convert("RGB").getdata())) > 50  # images and skeletons, not a blank canvas


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--domain", "beach", "--count", "3"], "Invalid value for '--domain'"),
        (["--domain", "studio", "--count", "0"], "Invalid value for '--count'"),
        (["--domain", "studio", "--count", "3", "--seed", "-1"], "Invalid value for '--seed'"),
        (["--domain", "studio", "--count", "3", "--size", "8"], "Invalid value for '--size'"),
        (["--domain", "studio"], "Missing option '--count'"),
    ],
)
def test_synth_rejects_bad_arguments_with_exit_2(
    app: typer.Typer, tmp_path: Path, args: list[str], message: str
) -> None:
    code, out = _run(app, "synth", *args, "--out", str(tmp_path / "never"))
    assert code == 2 and message in out, out
    assert not (tmp_path / "never").exists()


def test_synth_will_not_replace_a_file_or_a_folder_that_is_not_a_dataset(app: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    code, out = _run(app, "synth", "--domain", "studio", "--count", "2", "--out", str(tmp_path / "notes.txt"))
    assert code == 2 and "is a file" in out
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "thesis.tex").write_text("mine")
    code, out = _run(app, "synth", "--domain", "studio", "--count", "2", "--out", str(tmp_path / "work"))
    assert code == 2 and "not a dataset" in out
    assert (tmp_path / "work" / "thesis.tex").read_text() == "mine"


def test_synth_reports_an_unwritable_destination_in_one_line(app: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    where = ["--out", str(tmp_path / "set"), "--truth-dir", str(tmp_path / "blocker" / "truth")]
    code, out = _run(app, "synth", "--domain", "studio", "--count", "2", *where)
    assert code == 2 and "cannot write" in out and "Traceback" not in out


def test_show_rejects_a_missing_dataset_and_a_non_png_output(app: typer.Typer, tmp_path: Path) -> None:
    code, out = _run(app, "show", str(tmp_path / "nothing"), "--out", str(tmp_path / "g.png"))
    assert code == 2 and "is not a valid dataset" in out and "file not found" in out
    code, out = _run(app, "show", str(tmp_path), "--out", str(tmp_path / "g.jpg"))
    assert code == 2 and "must end in .png" in out


def test_validate_exits_1_naming_file_id_and_field(app: typer.Typer, studio_set: Dataset, tmp_path: Path) -> None:
    assert studio_set.root is not None
    coco = json.loads((studio_set.root / "annotations.json").read_text())
    coco["annotations"][3]["keypoints"] = coco["annotations"][3]["keypoints"][:-3]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(coco))
    code, out = _run(app, "validate", str(broken))
    assert code == 1
    assert str(broken) in out and f"annotation id={coco['annotations'][3]['id']}" in out and "'keypoints'" in out


def test_the_installed_command_fails_cleanly_on_a_bad_domain(tmp_path: Path) -> None:
    posewheel = Path(sys.executable).parent / "posewheel"
    result = subprocess.run(
        [str(posewheel), "synth", "--domain", "mars", "--count", "1", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "mars" in result.stderr and "Traceback" not in result.stderr
