"""Record the original CenterNet's answers: the fixture its PyTorch port (training/centernet.py) is tested against.

    .venv/bin/posewheel pretrained fetch && (cd scripts/movenet_reference && npm ci)
    .venv/bin/python scripts/movenet_reference/make_centernet_fixture.py [MODEL_JSON]

Takes every `*_256.png` model input of `tests/fixtures/real_photos/` (one person, several, or
nobody; made by `make_fixture.py` and `make_multipose_fixture.py`), resizes it to the graph's
512x512 (Pillow, bilinear), runs the original TF.js graph on it (`run_centernet.js`: Node,
@tensorflow/tfjs + wasm, offline; input RGB 0..255 as float32, as vladmandic/human feeds it) and
writes to `reference_centernet.json`, per image: the graph's own detections of class 0 (person),
its best TOP_PERSONS rows, and a summary of its person map (the whole 128x128 map is too big to
commit): its maximum and its means over POOLED x POOLED blocks. MODEL_JSON defaults to the
fetched cache. Run once; commit the output.
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

MODEL = "centernet"
INPUT_SIZE = 512  # the graph's fixed input
PERSON_CLASS = 0  # COCO's first class
TOP_PERSONS = 20  # detections of class 0 kept per image, best first
POOLED = 16  # the person map (128 x 128) is recorded as POOLED x POOLED block means


def model_input(png: Path) -> np.ndarray:
    """The graph's input made from a fixture PNG: (512, 512, 3) uint8 RGB."""
    image = Image.open(png).convert("RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(image, np.uint8)


def run_graph(model_json: Path, inputs: dict[str, np.ndarray]) -> dict:
    """run_centernet.js's parsed output for these (512, 512, 3) inputs."""
    encoded = {name: base64.b64encode(pixels.tobytes()).decode("ascii") for name, pixels in inputs.items()}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"size": INPUT_SIZE, "inputs": encoded}, f)
    try:
        proc = subprocess.run(
            ["node", str(HERE / "run_centernet.js"), str(model_json), f.name],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        Path(f.name).unlink()
    result: dict = json.loads(proc.stdout)
    return result


def summarise(detections: list[list[float]], person: list[list[float]]) -> dict:
    """One image's record: the best class-0 detections and the person map's maximum and block means."""
    rows = np.asarray(detections, np.float64)
    persons = rows[rows[:, 5] == PERSON_CLASS][:TOP_PERSONS, :5]
    heat = np.asarray(person, np.float64)
    block = heat.shape[0] // POOLED
    pooled = heat.reshape(POOLED, block, POOLED, block).mean(axis=(1, 3))
    return {
        "persons": [[*(round(float(v), 4) for v in row[:4]), round(float(row[4]), 6)] for row in persons],
        "person_max": round(float(heat.max()), 6),
        "person_pooled": [[round(float(v), 6) for v in row] for row in pooled],
    }


def main() -> None:
    model_json = Path(sys.argv[1]) if len(sys.argv) > 1 else pretrained.model_json(MODEL)
    inputs = {png.stem: model_input(png) for png in sorted(OUT.glob("*_256.png"))}
    result = run_graph(model_json, inputs)
    reference = {
        "made_by": "scripts/movenet_reference/make_centernet_fixture.py",
        "runtime": f"@tensorflow/tfjs {result['tfjs']}, backend {result['backend']}",
        "package": f"{pretrained.PACKAGE}@{pretrained.VERSION}",
        "model": MODEL,
        "input": f"per image (key: the PNG's name), the PNG resized to {INPUT_SIZE}x{INPUT_SIZE} (Pillow, "
        "bilinear), RGB 0..255 as float32",
        "persons": f"the graph's tower_0/detections rows of class {PERSON_CLASS} (person), best first, at most "
        f"{TOP_PERSONS}: [x1, y1, x2, y2, score], input pixels",
        "person_max": "the maximum of the person channel of tower_0/keypoints (after its sigmoid)",
        "person_pooled": f"that channel (128 x 128) averaged over {POOLED} x {POOLED} blocks of 8 x 8 cells",
        "images": {name: summarise(**out) for name, out in result["outputs"].items()},
    }
    path = OUT / "reference_centernet.json"
    path.write_text(json.dumps(reference, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path} ({len(reference['images'])} images, {path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
