"""One settings convention: the root and var/ move everything under them, and each variable has one reader."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from labeling.settings import LabelStudioSettings
from posewheel.settings import ProjectSettings, under
from serving.settings import ServingSettings


def test_var_dir_moves_every_folder_of_run_time_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("POSEWHEEL_ROOT", str(tmp_path / "project"))
    monkeypatch.setenv("POSEWHEEL_VAR_DIR", str(tmp_path / "state"))
    project, serving, studio = ProjectSettings(), ServingSettings(), LabelStudioSettings()
    state = tmp_path / "state"
    assert (project.image_store_dir, project.outbox_dir, project.truth_dir, project.predictions_dir) == (
        state / "images",
        state / "outbox",
        state / "truth",
        state / "predictions",
    )
    assert serving.resolved_image_store_dir() == project.image_store_dir
    assert serving.resolved_outbox_dir() == project.outbox_dir
    assert serving.resolved_predictions_dir() == project.predictions_dir
    assert studio.data_dir == state / "labelstudio"
    assert studio.secrets_file == state / "secrets" / "labelstudio.json"
    assert studio.document_root == state
    assert studio.venv == tmp_path / "project" / ".venv-labelstudio"  # code, not state: under the root


def test_one_path_rule_for_every_package(tmp_path: Path) -> None:
    assert under(tmp_path, None, "images") == under(tmp_path, Path(), "images") == tmp_path / "images"
    assert under(tmp_path, Path("elsewhere"), "images") == tmp_path / "elsewhere"
    assert under(tmp_path, Path("/abs/images"), "images") == Path("/abs/images")


def test_the_image_store_has_one_reader(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("POSEWHEEL_ROOT", str(tmp_path))
    monkeypatch.setenv("POSEWHEEL_IMAGE_STORE_DIR", "shared-images")  # relative: under var/, for everyone
    assert ServingSettings().resolved_image_store_dir() == ProjectSettings().image_store_dir
    assert ProjectSettings().image_store_dir == tmp_path / "var" / "shared-images"
    classes = (ProjectSettings, ServingSettings, LabelStudioSettings)
    assert [cls for cls in classes if "image_store_dir" in inspect.get_annotations(cls)] == [ProjectSettings]
