"""Record the original MoveNet MultiPose's answers: the fixture its PyTorch port is tested against.

    .venv/bin/posewheel pretrained fetch && (cd scripts/movenet_reference && npm ci)
    .venv/bin/python scripts/movenet_reference/make_multipose_fixture.py

Reuses the 256x256 model inputs that `make_fixture.py` wrote to `tests/fixtures/real_photos/`
(one person each, or nobody) and adds inputs with several people, pasted from those same
photographs: `two_people_256.png` (astronaut and Grace Hopper shrunk to 128x128, side by side),
`two_halves_256.png` (the middle halves of the two, side by side, at full scale),
`four_people_256.png` (a 2x2 grid: astronaut, Grace Hopper, cameraman, mirrored astronaut) and
`four_people_384.png` (that grid resized to 384x384: the graph takes any multiple of 32). Runs the
original TF.js graph (`run.js`: Node, @tensorflow/tfjs + wasm, offline) on all of them and writes
its whole output, six candidates per image, to `reference_multipose.json`. Run once; commit the outputs.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "tests" / "fixtures" / "real_photos"
sys.path.insert(0, str(ROOT))

from posewheel import pretrained  # noqa: E402

MODEL = "movenet-multipose"
RECORDED = [
    "astronaut",
    "astronaut_mirrored",
    "cameraman",
    "cameraman_mirrored",
    "grace_hopper",
    "grace_hopper_mirrored",
    "nobody_cat",
    "nobody_coffee",
    "nobody_rocket",
]
OUTPUT_NODE = "StatefulPartitionedCall/concat_1"  # = Identity:0, [1, 6, 56]; run.js keeps only row 0 of that


def load(name: str) -> Image.Image:
    return Image.open(OUT / f"{name}_256.png").convert("RGB")


def several_people() -> dict[str, Image.Image]:
    """Inputs with two and four people, pasted from the one-person 256x256 inputs."""
    small = {
        n: load(n).resize((128, 128), Image.Resampling.BILINEAR)
        for n in ("astronaut", "grace_hopper", "cameraman", "astronaut_mirrored")
    }
    two = Image.new("RGB", (256, 256))
    two.paste(small["astronaut"], (0, 64))
    two.paste(small["grace_hopper"], (128, 64))
    halves = Image.new("RGB", (256, 256))
    halves.paste(load("astronaut").crop((64, 0, 192, 256)), (0, 0))
    halves.paste(load("grace_hopper").crop((64, 0, 192, 256)), (128, 0))
    four = Image.new("RGB", (256, 256))
    for (x, y), name in zip([(0, 0), (128, 0), (0, 128), (128, 128)], small, strict=True):
        four.paste(small[name], (x, y))
    return {
        "two_people_256": two,
        "two_halves_256": halves,
        "four_people_256": four,
        "four_people_384": four.resize((384, 384), Image.Resampling.BILINEAR),
    }


def run_graph(images: dict[str, Image.Image], size: int) -> tuple[str, dict[str, list[list[float]]]]:
    """The original graph's [6, 56] output per image (inputs of one size), and the runtime's name."""
    inputs = {
        name: base64.b64encode(np.asarray(image, np.uint8).tobytes()).decode("ascii") for name, image in images.items()
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"size": size, "inputs": inputs}, f)
    proc = subprocess.run(
        ["node", str(HERE / "run.js"), str(pretrained.model_json(MODEL)), f.name, OUTPUT_NODE],
        capture_output=True,
        text=True,
        check=True,
    )
    Path(f.name).unlink()
    result = json.loads(proc.stdout)
    runtime = f"@tensorflow/tfjs {result['tfjs']}, backend {result['backend']}"
    # 1e-6 of the input is far below the port's error bars
    return runtime, {
        name: [[round(v, 6) for v in row] for row in out[OUTPUT_NODE][0]] for name, out in result["outputs"].items()
    }


def main() -> None:
    made = several_people()
    for name, image in made.items():
        image.save(OUT / f"{name}.png", optimize=True)
    by_size: dict[int, dict[str, Image.Image]] = {}
    for name in RECORDED:
        by_size.setdefault(256, {})[f"{name}_256"] = load(name)
    for name, image in made.items():  # read back what was saved: the fixture is the PNG
        by_size.setdefault(image.width, {})[name] = Image.open(OUT / f"{name}.png").convert("RGB")
    images: dict[str, object] = {}
    runtime = ""
    for size, group in sorted(by_size.items()):
        runtime, outputs = run_graph(group, size)
        for name, persons in outputs.items():
            images[name] = {"input_size": size, "candidates": persons}
    reference = {
        "made_by": "scripts/movenet_reference/make_multipose_fixture.py",
        "runtime": runtime,
        "package": f"{pretrained.PACKAGE}@{pretrained.VERSION}",
        "model": MODEL,
        "candidates": "per image (key: the PNG's name), the graph's whole output, 6 x 56: 17 x [y, x, score] "
        "normalised to the input, the box [ymin, xmin, ymax, xmax] normalised, the person score",
        "images": images,
    }
    (OUT / "reference_multipose.json").write_text(json.dumps(reference, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(made)} inputs and reference_multipose.json ({len(images)} images) to {OUT}")


if __name__ == "__main__":
    main()
