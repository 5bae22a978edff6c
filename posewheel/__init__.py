"""Posewheel: 2D human pose estimation with a working data flywheel (the shared core)."""

import pi_heif

__version__ = "0.1.0"

# Pillow opens HEIC (the photographs iPhones take) wherever the project reads an image: the server, the
# image store, the export, training. pi-heif decodes only (libheif, libde265); libheif turns the picture
# by the file's own transform, so it opens upright with EXIF orientation 1.
pi_heif.register_heif_opener()
