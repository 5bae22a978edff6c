"""How faithful the PyTorch MoveNet port is: its keypoints against the original TF.js graph's, per photograph.

    .venv/bin/python benchmarks/port_fidelity.py

Runs the ported Lightning and Thunder networks (training/movenet.py, weights from the pinned
package) on every photograph of the real-photo check set and compares the decoded keypoints with
what the original graph answered in Node (tests/fixtures/real_photos/reference.json). The
baseline is the reference itself: errors are in pixels at the model's input resolution.

Prints one JSON line per model and photograph, then one summary per model:
  photo     median and max error (px) over all 17 keypoints and over the confident ones, score error
  model     the same over all photographs, and the issue's bars (median < 1 px, max confident < 3 px)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from posewheel.decoding import decode_movenet
from tests.support.figures import emit
from training.movenet import CONFIGS, load_pretrained

CHECK_SET = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "real_photos"
CONFIDENT = 0.3  # reference keypoints above this score count for the max-error bar


def main() -> None:
    reference = json.loads((CHECK_SET / "reference.json").read_text(encoding="utf-8"))
    for model, recorded in reference["models"].items():
        size = CONFIGS[model].input_size
        names = [n for n in recorded["keypoints"] if not n.startswith("nobody")]
        images = [np.asarray(Image.open(CHECK_SET / f"{n}_{size}.png").convert("RGB"), np.float32) for n in names]
        x = torch.from_numpy(np.stack(images) / 127.5 - 1.0).permute(0, 3, 1, 2)
        with torch.no_grad():
            out = {k: v.numpy() for k, v in load_pretrained(model)(x).items()}
        points, scores = decode_movenet(out["heatmaps"], out["centers"], out["regress"], out["offsets"], stride=4)
        errors, confident = [], []
        for i, name in enumerate(names):
            kps = np.asarray(recorded["keypoints"][name])
            err = np.linalg.norm(points[i] - kps[:, [1, 0]] * size, axis=1)
            conf = kps[:, 2] > CONFIDENT
            errors.append(err)
            confident.append(conf)
            emit(
                "photo",
                benchmark="port_fidelity",
                model=model,
                photo=name,
                median_px=round(float(np.median(err)), 4),
                max_px=round(float(err.max()), 4),
                confident=int(conf.sum()),
                max_confident_px=round(float(err[conf].max()), 4) if conf.any() else None,
                max_score_error=round(float(np.abs(scores[i] - kps[:, 2]).max()), 6),
            )
        err, conf = np.concatenate(errors), np.concatenate(confident)
        emit(
            "model",
            benchmark="port_fidelity",
            model=model,
            input_px=size,
            photographs=len({n.removesuffix("_mirrored") for n in names}),
            inputs=len(names),
            median_px=round(float(np.median(err)), 4),
            max_confident_px=round(float(err[conf].max()), 4),
            passed=bool(np.median(err) < 1.0 and err[conf].max() < 3.0),
        )


if __name__ == "__main__":
    main()
