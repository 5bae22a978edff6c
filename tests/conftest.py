"""Test session setup: shared fixtures live in tests/support/<area>.py and are registered here."""

from __future__ import annotations

import importlib.util
import os

# W&B never reaches the network from tests; its files stay inside the project's ignored folders.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# torch's OpenMP threads spin while waiting; on a shared 2-core machine that starves everything else.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_SUPPORT = ("data", "artifacts", "onnx_models", "server", "labelstudio", "flywheel")
pytest_plugins = [
    f"tests.support.{name}" for name in _SUPPORT if importlib.util.find_spec(f"tests.support.{name}") is not None
]
