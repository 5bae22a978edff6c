"""Record the original MoveNet's answers on real photographs: the fixture the PyTorch port is tested against.

    cd scripts/movenet_reference && npm ci && cd - && .venv/bin/python scripts/movenet_reference/make_fixture.py

Takes the public-domain photographs that ship inside packages (scikit-image's astronaut and
cameraman, matplotlib's Grace Hopper, and "ascent", two people on a stairway, from the scipy 1.9.3
wheel, pinned by hash, which `pip download` fetches into a temporary folder) and their mirror
images, pads each to a square, resizes it to each MoveNet's input size, and writes those exact model
inputs to `tests/fixtures/real_photos/` as PNG. Then runs the original TF.js graphs (Node,
@tensorflow/tfjs + the wasm backend, offline) on them and writes what the graphs answered to
`reference.json`. People-free photographs (a cat, a cup of coffee, a rocket) are added for the
person-finding checks. Run once; commit the outputs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import matplotlib
import numpy as np
import skimage
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "tests" / "fixtures" / "real_photos"
sys.path.insert(0, str(ROOT))

from posewheel import pretrained  # noqa: E402

SKIMAGE = Path(skimage.__file__).parent / "data"
MPL = Path(matplotlib.get_data_path()) / "sample_data"
PEOPLE = {"astronaut": SKIMAGE / "astronaut.png", "cameraman": SKIMAGE / "camera.png",
          "grace_hopper": MPL / "grace_hopper.jpg"}  # fmt: skip
NOBODY = {"cat": SKIMAGE / "chelsea.png", "coffee": SKIMAGE / "coffee.png", "rocket": SKIMAGE / "rocket.jpg"}
# scipy <= 1.9 shipped "ascent" (derived from accent-to-the-top.jpg, public-domain-image.com) in the wheel
ASCENT_WHEEL = "scipy==1.9.3"
ASCENT_SHA256 = "e8a84939484463ab8051aedc5b40aa262ab33a91d6458a6cd13c6a1cad5a023d"
SIZES = {"movenet-lightning": 192, "movenet-thunder": 256}


def square(image: Image.Image, size: int) -> Image.Image:
    """Pad to a centred square with black, then resize to size x size (bilinear)."""
    side = max(image.size)
    canvas = Image.new("RGB", (side, side))
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return canvas.resize((size, size), Image.Resampling.BILINEAR)


def ascent() -> Image.Image:
    """The 512x512 greyscale "ascent" photograph from the pinned scipy wheel, checked by hash."""
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", folder,
                        ASCENT_WHEEL], check=True, capture_output=True)  # fmt: skip
        wheel = next(Path(folder).glob("scipy-*.whl"))
        data = zipfile.ZipFile(wheel).read("scipy/misc/ascent.dat")
    if hashlib.sha256(data).hexdigest() != ASCENT_SHA256:
        raise SystemExit(f"ascent.dat in {wheel.name} is not the pinned one")
    pixels = np.asarray(pickle.loads(data), dtype=np.uint8)  # the pinned file, checked above
    return Image.fromarray(pixels).convert("RGB")


def photos() -> dict[str, Image.Image]:
    out = {}
    sources = {name: Image.open(path) for name, path in PEOPLE.items()} | {"ascent": ascent()}
    for name, source in sources.items():
        image = source.convert("RGB")
        out[name] = image
        out[name + "_mirrored"] = ImageOps.mirror(image)
    for name, path in NOBODY.items():
        out["nobody_" + name] = Image.open(path).convert("RGB")
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    reference: dict[str, object] = {
        "made_by": "scripts/movenet_reference/make_fixture.py",
        "runtime": None,
        "package": f"{pretrained.PACKAGE}@{pretrained.VERSION}",
        "keypoints": "per model, per image: 17 x [y, x, score], y and x normalised to the model input",
        "models": {},
    }
    images = photos()
    for model, size in SIZES.items():
        inputs = {}
        for name, image in images.items():
            prepared = square(image, size)
            prepared.save(OUT / f"{name}_{size}.png", optimize=True)
            inputs[name] = base64.b64encode(np.asarray(prepared, np.uint8).tobytes()).decode("ascii")
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"size": size, "inputs": inputs}, f)
        proc = subprocess.run(["node", str(HERE / "run.js"), str(pretrained.model_json(model)), f.name],
                              capture_output=True, text=True, check=True)  # fmt: skip
        result = json.loads(proc.stdout)
        reference["runtime"] = f"@tensorflow/tfjs {result['tfjs']}, backend {result['backend']}"
        reference["models"][model] = {  # type: ignore[index]
            "input_size": size,
            "keypoints": {name: out["keypoints"] for name, out in result["outputs"].items()},
        }
    (OUT / "reference.json").write_text(json.dumps(reference, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(images) * len(SIZES)} inputs and reference.json to {OUT}")


if __name__ == "__main__":
    main()
