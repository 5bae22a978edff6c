"""Synthetic people for pose estimation: seeded, deterministic, with truth read from the rendering.

    from posewheel.synth import generate, render_sample, DOMAINS
    sample = render_sample(DOMAINS["street"], seed=0, index=7)   # image, keypoints, bbox, labels
    scene = render_group(DOMAINS["street"], seed=0, index=7, persons=(0, 4))   # scene.persons: 0..4
    generate("studio", count=500, seed=0, out="data/seed", truth_dir="var/truth")
    generate("street", count=500, seed=5, out="data/groups", persons=(0, 4))  # several per image

Modules: `figure` (articulated body, joint limits, part ids), `render` (painter's pass into RGB and
a part-label map, visibility), `appearance` (backdrops, clutter, occluders, camera), `scene` (studio
and street domains, one person), `group` (0..N persons occluding each other), `generate` (dataset
writer).
"""

from posewheel.synth.figure import BODY_PARTS, JOINT_OWNERS, OCCLUDER
from posewheel.synth.group import DEFAULT_PERSONS, MAX_PERSONS, GroupSample, Person, render_group
from posewheel.synth.scene import DOMAINS, STREET, STUDIO, Domain, Sample, render_sample
from posewheel.synth.writer import encode_sample, file_name, generate

__all__ = [
    "BODY_PARTS",
    "DEFAULT_PERSONS",
    "DOMAINS",
    "JOINT_OWNERS",
    "MAX_PERSONS",
    "OCCLUDER",
    "STREET",
    "STUDIO",
    "Domain",
    "GroupSample",
    "Person",
    "Sample",
    "encode_sample",
    "file_name",
    "generate",
    "render_group",
    "render_sample",
]
