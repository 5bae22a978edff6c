"""Baseline for benchmarks/serve_load.py: LitServe serving the same ONNX artifact with its own batching.

    python benchmarks/serve_litserve.py ARTIFACT_DIR PORT MAX_BATCH_SIZE BATCH_TIMEOUT_S THREADS [WORKERS]

Same decoding, cropping, ONNX Runtime session and heatmap decoding as posewheel's engine; only
the server around them is LitServe's (API process + inference worker process, its batching).
"""

import base64
import sys
from pathlib import Path
from typing import Any

import litserve as ls
import numpy as np

from posewheel.decoding import Box
from serving.engine import ServedModel, load_model
from serving.images import decode_image, parse_boxes
from serving.reload import fingerprint
from serving.service import pose_dicts


class PoseLitAPI(ls.LitAPI):
    def __init__(self, artifact: Path, threads: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.artifact = artifact
        self.threads = threads
        self.model: ServedModel | None = None

    def setup(self, device: str) -> None:
        self.model = load_model(self.artifact, fingerprint(self.artifact), self.threads)

    def decode_request(self, request: dict[str, Any]) -> tuple[np.ndarray, list[Box], list[Box]]:
        assert self.model is not None
        decoded = decode_image(base64.b64decode(request["image_base64"]), 40_000_000)
        boxes = parse_boxes(request.get("boxes"), decoded.width, decoded.height, 64)
        prepared = self.model.read_boxes(decoded.image, boxes)  # as posewheel's server reads a caller's boxes
        return prepared.inputs, prepared.windows, boxes

    def batch(self, inputs: list[tuple[np.ndarray, list[Box], list[Box]]]) -> list[Any]:
        return inputs

    def predict(self, batch: Any) -> Any:
        """A list of decoded requests (batched) or one; returns (boxes, keypoints, scores) per request."""
        assert self.model is not None
        items = batch if isinstance(batch, list) else [batch]
        inputs = np.concatenate([i[0] for i in items])
        points, scores = self.model.infer_decode(inputs, [w for i in items for w in i[1]])
        out, start = [], 0
        for _, windows, boxes in items:
            n = len(windows)
            out.append((boxes, points[start : start + n], scores[start : start + n]))
            start += n
        return out if isinstance(batch, list) else out[0]

    def unbatch(self, output: list[Any]) -> list[Any]:
        return output

    def encode_response(self, output: tuple[list[Box], np.ndarray, np.ndarray]) -> dict[str, Any]:
        assert self.model is not None
        boxes, points, scores = output
        return {"model_version": self.model.version, "poses": pose_dicts(boxes, points, scores)}


if __name__ == "__main__":
    artifact, port, max_batch, timeout_s, threads = sys.argv[1:6]
    workers = int(sys.argv[6]) if len(sys.argv) > 6 else 1  # inference worker processes, THREADS each
    api = PoseLitAPI(Path(artifact), int(threads), max_batch_size=int(max_batch), batch_timeout=float(timeout_s))
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=workers, timeout=60)
    server.run(host="127.0.0.1", port=int(port), log_level="warning", generate_client_file=False)
