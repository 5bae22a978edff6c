"""Baseline for benchmarks/serve_load.py: a naive FastAPI endpoint running the torch model per request.

    python benchmarks/serve_naive.py ARTIFACT_DIR PORT

What a first version of a pose server usually is: a synchronous route (FastAPI runs it in its
thread pool) that decodes, crops, runs the eager PyTorch network on a batch of one and decodes.
It may import torch and training: it is a benchmark, not the product.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI

from posewheel.artifact import load_card
from posewheel.decoding import decode_to_image
from serving.engine import prepare
from serving.images import decode_image, parse_boxes
from serving.service import pose_dicts
from training.artifact_export import load_weights
from training.model import NetConfig, PoseNet


def build_app(artifact: Path) -> FastAPI:
    card = load_card(artifact)
    spec = card.input_spec()
    net = PoseNet(NetConfig(backbone=str(card.params.get("backbone", NetConfig.backbone))))
    net.load_state_dict(load_weights(artifact))
    net.eval()
    app = FastAPI()

    @app.post("/v1/predict")
    def predict(body: dict[str, Any]) -> dict[str, Any]:
        decoded = decode_image(base64.b64decode(body["image_base64"]), 40_000_000)
        boxes = parse_boxes(body.get("boxes"), decoded.width, decoded.height, 64)
        inputs, windows = prepare(decoded.image, boxes, spec)
        with torch.inference_mode():
            heatmaps = net(torch.from_numpy(inputs)).numpy()
        points, scores = decode_to_image(heatmaps, windows, spec)
        return {"model_version": card.version, "poses": pose_dicts(boxes, points, scores)}

    return app


if __name__ == "__main__":
    torch.set_num_threads(2)
    np.seterr(all="ignore")
    uvicorn.run(build_app(Path(sys.argv[1])), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
