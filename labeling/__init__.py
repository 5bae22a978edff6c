"""Posewheel labeling."""
