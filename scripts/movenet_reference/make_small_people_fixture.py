"""Record the original MoveNet Lightning's answers on the small-people pictures (training/realphotos.py).

    (cd scripts/movenet_reference && npm ci)
    .venv/bin/python scripts/movenet_reference/make_small_people_fixture.py

The check set's three single people, pasted at 55% of the side into five places of two people-free
photographs (`training.realphotos.small_people`, made from the committed 512 px check-set files, so
nothing but the answers needs committing). Runs the original TF.js graph (Node, @tensorflow/tfjs +
the wasm backend, offline, `run.js`) on those exact model inputs and writes what it answered to
`tests/fixtures/real_photos/reference_small_people.json`. Run once; commit the output.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from posewheel import pretrained  # noqa: E402
from training.realphotos import CHECK_SET, REFERENCE_MODEL, SMALL_PEOPLE_REFERENCE, small_people  # noqa: E402


def main() -> None:
    pictures = small_people()
    size = next(iter(pictures.values())).width
    inputs = {name: base64.b64encode(np.asarray(p, np.uint8).tobytes()).decode("ascii") for name, p in pictures.items()}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"size": size, "inputs": inputs}, f)
    proc = subprocess.run(["node", str(HERE / "run.js"), str(pretrained.model_json(REFERENCE_MODEL)), f.name],
                          capture_output=True, text=True, check=True)  # fmt: skip
    result = json.loads(proc.stdout)
    recorded = {
        "made_by": "scripts/movenet_reference/make_small_people_fixture.py",
        "runtime": f"@tensorflow/tfjs {result['tfjs']}, backend {result['backend']}",
        "package": f"{pretrained.PACKAGE}@{pretrained.VERSION}",
        "model": REFERENCE_MODEL,
        "input_size": size,
        "keypoints": {name: out["keypoints"] for name, out in result["outputs"].items()},
    }
    (CHECK_SET / SMALL_PEOPLE_REFERENCE).write_text(json.dumps(recorded, indent=1) + "\n", encoding="utf-8")
    print(f"wrote the original's answers on {len(pictures)} pictures to {CHECK_SET / SMALL_PEOPLE_REFERENCE}")


if __name__ == "__main__":
    main()
