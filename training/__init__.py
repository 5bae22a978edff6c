"""Posewheel training."""
