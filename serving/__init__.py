"""Posewheel serving."""
