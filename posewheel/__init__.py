"""Posewheel: 2D human pose estimation with a working data flywheel (the shared core)."""

__version__ = "0.1.0"
