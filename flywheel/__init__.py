"""Posewheel flywheel."""
