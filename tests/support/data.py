"""Shared data fixtures: small synthetic studio and street sets, and the truth store behind them.

    def test_something(studio_set: Dataset, street_set: Dataset, truth_dir: Path) -> None: ...

Both sets are generated once per test session (48 images each, 256x256, about 1 s together) into a
temporary folder; their ground truth goes to `truth_dir`, keyed by each image file's SHA-256.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from posewheel.dataset import Dataset, load
from posewheel.synth import generate

SET_SIZE = 48
STUDIO_SEED = 0
STREET_SEED = 1


@pytest.fixture(scope="session")
def truth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The truth store folder the session's synthetic sets write to."""
    return tmp_path_factory.mktemp("truth")


@pytest.fixture(scope="session")
def studio_set(tmp_path_factory: pytest.TempPathFactory, truth_dir: Path) -> Dataset:
    """48 studio images (seed 0), loaded and validated; its truth is in `truth_dir`."""
    root = tmp_path_factory.mktemp("data") / "studio"
    generate("studio", SET_SIZE, STUDIO_SEED, root, truth_dir=truth_dir)
    return load(root)


@pytest.fixture(scope="session")
def street_set(tmp_path_factory: pytest.TempPathFactory, truth_dir: Path) -> Dataset:
    """48 street images (seed 1), loaded and validated; its truth is in `truth_dir`."""
    root = tmp_path_factory.mktemp("data") / "street"
    generate("street", SET_SIZE, STREET_SEED, root, truth_dir=truth_dir)
    return load(root)
