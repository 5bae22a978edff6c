"""The server, run from a real trained artifact, answers exactly what offline evaluation computes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np

from posewheel.dataset import Dataset
from serving.schemas import PredictResponse
from tests.support.server import run_server, test_settings


def test_served_keypoints_equal_offline_evaluation(trained_artifact: Path, studio_set: Dataset, tmp_path: Path) -> None:
    from training.evaluate import predict

    offline = predict(trained_artifact, studio_set.root)  # type: ignore[arg-type]
    by_id = {a.id: a for a in studio_set.annotations}
    images = {img.id: img for img in studio_set.images}
    with run_server(test_settings(tmp_path, trained_artifact, max_batch_size=4)) as server:
        for row, ann_id in enumerate(offline.annotation_ids[:6]):
            ann = by_id[ann_id]
            data = studio_set.image_path(images[ann.image_id]).read_bytes()
            r = httpx.post(
                server.url + "/v1/predict",
                files={"image": ("p.jpg", data, "image/jpeg")},
                data={"boxes": json.dumps([list(ann.bbox)])},
            )
            assert r.status_code == 200, r.text
            body = PredictResponse.model_validate(r.json())
            assert body.model_version == "m-test-trained"
            (pose,) = body.poses
            served = np.array([[k.x, k.y] for k in pose.keypoints])
            np.testing.assert_allclose(served, offline.keypoints[row], atol=1e-3)
            np.testing.assert_allclose([k.score for k in pose.keypoints], offline.joint_scores[row], atol=1e-4)
            assert abs(pose.score - float(offline.joint_scores[row].mean())) < 1e-4
