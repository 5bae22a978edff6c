"""Synthetic people for pose estimation: seeded, deterministic, with truth read from the rendering.

    from posewheel.synth import generate, render_sample, DOMAINS
    sample = render_sample(DOMAINS["street"], seed=0, index=7)   # image, keypoints, bbox, labels
    generate("studio", count=500, seed=0, out="data/seed", truth_dir="var/truth")

Modules: `figure` (articulated body, joint limits, part ids), `render` (painter's pass into RGB and
a part-label map, visibility), `scene` (studio and street domains), `generate` (dataset writer).
"""

from posewheel.synth.figure import BODY_PARTS, JOINT_OWNERS, OCCLUDER
from posewheel.synth.generate import encode_sample, file_name, generate
from posewheel.synth.scene import DOMAINS, STREET, STUDIO, Domain, Sample, render_sample

__all__ = [
    "BODY_PARTS",
    "DOMAINS",
    "JOINT_OWNERS",
    "OCCLUDER",
    "STREET",
    "STUDIO",
    "Domain",
    "Sample",
    "encode_sample",
    "file_name",
    "generate",
    "render_sample",
]
