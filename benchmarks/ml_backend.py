"""Label Studio's "Retrieve predictions" on 100 imported tasks, answered by the server's ML backend.

    .venv/bin/python benchmarks/ml_backend.py [--model models/production] [--tasks 100] [--rounds 3]

A real Label Studio (its own data dir under --work, from the test template) and a real `posewheel serve`
(a child process on the artifact, POSEWHEEL_INTRA_OP_THREADS=1 as in the tests). The real photographs of
tests/fixtures/real_photos/*_256.png, cycled to --tasks, are uploaded straight into a project (no outbox);
the server is connected as its model (POST /api/ml), and the data manager action
`retrieve_tasks_predictions` runs on every task, timed end to end (Label Studio's health check and setup,
its one /predict call, saving the predictions), --rounds times (predictions deleted in between). Figures:

- `retrieve`: seconds per round (median, all), tasks with a prediction of the served version, persons found.
- `ml_backend_direct`: the same tasks POSTed to /ml-backend/predict by hand (the backend's share of the time).
- `api_baseline`: the same images through /v1/predict, 8 at a time (the backend fetches 8 images at once).

Without --model, the pretrained MoveNet Lightning + MultiPose artifact is exported into the work folder.
One JSON line per figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

import httpx

from tests.support.figures import emit as emit_figure

PHOTOS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "real_photos"


def emit(figure: str, **fields: Any) -> None:
    emit_figure(figure, benchmark="ml_backend", **fields)


def upload(ls: httpx.Client, project_id: int, photos: list[Path], batch: int = 25) -> list[int]:
    """Upload the photos as Label Studio's own file uploads (a field name per file: it keeps one per name)."""
    for start in range(0, len(photos), batch):
        files = [
            (f"file{i}", (f"{i:03d}_{p.name}", p.read_bytes()))
            for i, p in enumerate(photos)
            if start <= i < start + batch
        ]
        response = ls.post(f"/api/projects/{project_id}/import", files=files)
        response.raise_for_status()
    return [int(t["id"]) for t in tasks(ls, project_id)]


def tasks(ls: httpx.Client, project_id: int) -> list[dict[str, Any]]:
    response = ls.get("/api/tasks", params={"project": project_id, "page_size": 1000, "fields": "all"})
    response.raise_for_status()
    return list(response.json()["tasks"])


def predictions(ls: httpx.Client, project_id: int) -> list[dict[str, Any]]:
    response = ls.get("/api/predictions/", params={"project": project_id})
    response.raise_for_status()
    return list(response.json())


def action(ls: httpx.Client, project_id: int, name: str) -> None:
    response = ls.post(
        "/api/dm/actions",
        params={"id": name, "project": project_id},
        json={"selectedItems": {"all": True, "excluded": []}},
        timeout=300,
    )
    response.raise_for_status()


def persons(prediction: dict[str, Any]) -> int:
    return sum(1 for r in prediction.get("result", []) if r.get("type") == "rectanglelabels")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="artifact folder; default: pretrained MoveNet")
    parser.add_argument("--tasks", type=int, default=100, help="tasks imported and predicted")
    parser.add_argument("--rounds", type=int, default=3, help="times the retrieve action runs")
    parser.add_argument("--work", type=Path, default=None, help="Label Studio, server and models go here")
    args = parser.parse_args()

    from tests.support.labelstudio import running_labelstudio
    from tests.support.server_process import ServerProcess

    with tempfile.TemporaryDirectory(prefix="bench-ml-backend-") as tmp:
        work = args.work or Path(tmp)
        model = args.model
        if model is None:
            from posewheel import artifact
            from training.pretrained import export_pretrained

            model = export_pretrained("movenet-lightning", work / "models")
            artifact.promote(work / "models", model.name)
        photos = sorted(PHOTOS.glob("*_256.png"))
        chosen = [photos[i % len(photos)] for i in range(args.tasks)]
        with running_labelstudio(work / "labelstudio") as labelstudio:
            env = labelstudio.env()
            with ServerProcess(work / "server", model, env=env).start() as server:
                run(labelstudio, server.url, chosen, args.rounds)


def run(labelstudio: Any, server_url: str, photos: list[Path], rounds: int) -> None:
    token = labelstudio.settings.credentials().token
    headers = {"Authorization": f"Token {token}"}
    version = httpx.get(f"{server_url}/readyz").json()["model_version"]
    with httpx.Client(base_url=labelstudio.settings.base_url, headers=headers, timeout=120) as ls:
        project_id = labelstudio.new_project("bench-mlb")
        started = time.perf_counter()
        task_ids = upload(ls, project_id, photos)
        emit("import", tasks=len(task_ids), seconds=round(time.perf_counter() - started, 2), photos=len(set(photos)))
        connected = ls.post(
            "/api/ml", json={"project": project_id, "url": f"{server_url}/ml-backend", "title": "posewheel"}
        )
        connected.raise_for_status()

        times: list[float] = []
        found: list[dict[str, Any]] = []
        for r in range(rounds):
            if r:
                action(ls, project_id, "delete_tasks_predictions")
            started = time.perf_counter()
            action(ls, project_id, "retrieve_tasks_predictions")
            times.append(time.perf_counter() - started)
            found = predictions(ls, project_id)
        ours = [p for p in found if p.get("model_version") == version]
        emit(
            "retrieve",
            tasks=len(task_ids),
            rounds=rounds,
            seconds_median=round(statistics.median(times), 2),
            seconds=[round(t, 2) for t in times],
            tasks_per_s=round(len(task_ids) / statistics.median(times), 1),
            tasks_with_prediction=len({p["task"] for p in ours}),
            predictions_with_persons=sum(1 for p in ours if persons(p)),
            persons=sum(persons(p) for p in ours),
            model_version=version,
        )

        # The backend's own share: Label Studio's tasks, POSTed to /ml-backend/predict by hand.
        ls_tasks = tasks(ls, project_id)
        config = ls.get(f"/api/projects/{project_id}").json()["label_config"]
        body = {"tasks": ls_tasks, "project": f"{project_id}.0", "label_config": config}
        direct: list[float] = []
        answer: dict[str, Any] = {}
        for _ in range(rounds):
            started = time.perf_counter()
            response = httpx.post(f"{server_url}/ml-backend/predict", json=body, timeout=300)
            direct.append(time.perf_counter() - started)
            response.raise_for_status()
            answer = response.json()
        emit(
            "ml_backend_direct",
            tasks=len(ls_tasks),
            seconds_median=round(statistics.median(direct), 2),
            tasks_per_s=round(len(ls_tasks) / statistics.median(direct), 1),
            answered=sum(1 for r in answer["results"] if r),
            errors=len(answer["errors"]),
        )

    # Baseline: the same images through the API itself, 8 requests at a time.
    def one(photo: Path) -> int:
        response = httpx.post(
            f"{server_url}/v1/predict", files={"image": (photo.name, photo.read_bytes())}, timeout=120
        )
        response.raise_for_status()
        return len(response.json()["poses"])

    api: list[float] = []
    counts: list[int] = []
    for _ in range(rounds):
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            counts = list(pool.map(one, photos))
        api.append(time.perf_counter() - started)
    emit(
        "api_baseline",
        images=len(photos),
        concurrency=8,
        seconds_median=round(statistics.median(api), 2),
        images_per_s=round(len(photos) / statistics.median(api), 1),
        persons=sum(counts),
        cpu_count=os.cpu_count(),
    )


if __name__ == "__main__":
    main()
