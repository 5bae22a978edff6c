"""`posewheel predict` over a folder of images and over a video, against the engine's offline limit.

    .venv/bin/python benchmarks/predict_folder.py [--count 1000] [--frames 300] [--model DIR] [--work DIR]

A folder of `count` synthetic street images (`posewheel.synth.generate`, 256 x 256 JPEG) goes through
the real command, `posewheel predict FOLDER` in its own process, and its summary line gives images/s
(the run without start-up and model load; the wall time with them is reported too). Two limits of
the same artifact on the same threads, in this process, with no file IO:

  offline_pose_limit    batched `infer_decode` over crops decoded and cropped beforehand (the pose network
                        and its decoding alone)
  offline_engine_limit  as benchmarks/serve_load.py's offline limit: decode from bytes in memory, find
                        the persons (the artifact's detector), crop, on `threads` prepare threads while
                        the previous batch is inferred: everything `posewheel predict` does but reading files

Then a video of `frames` of those images (H.264, PyAV) through `posewheel predict VIDEO`: frames/s
including decoding. The model is `--model`, else models/production, else the pretrained MoveNet
Lightning with its CenterNet detector exported into the work folder. One JSON line per figure.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from tests.support.figures import emit as emit_figure

if TYPE_CHECKING:  # at run time serving is imported inside the methods that use it, as before
    from serving.engine import Prepared

ROOT = Path(__file__).resolve().parents[1]
emit = partial(emit_figure, benchmark="predict_folder")
# serving.batch_predict.Summary.line; a video's line also says how many tracks it started
SUMMARY = re.compile(
    r"(\d+) images, (\d+) frames, (\d+) persons(?: \(\d+ tracked [^)]*\))? in ([\d.]+) s \(([\d.]+) images/s\)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="synthetic street images in the folder")
    parser.add_argument("--frames", type=int, default=300, help="frames of the video (0: no video)")
    parser.add_argument("--seed", type=int, default=7, help="synthetic data seed")
    parser.add_argument("--model", type=Path, default=None, help="artifact folder [default: models/production]")
    parser.add_argument("--batch", type=int, default=16, help="person crops per inference batch")
    parser.add_argument("--threads", type=int, default=0, help="ORT and prepare threads; 0 = CPU cores")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / "predict_folder", help="data here")
    args = parser.parse_args()
    threads = args.threads or len(os.sched_getaffinity(0))
    work: Path = args.work
    folder = synth_folder(work, args.count, args.seed)
    model = args.model or production_or_pretrained(work)
    images = sorted((folder / "images").glob("*.jpg"))
    emit("setup", images=len(images), model=str(model), threads=threads, batch=args.batch, load=os.getloadavg()[0])

    cli = run_predict([folder / "images"], model, work / "results.json", args.batch, threads)
    emit("folder", images=cli["images"], persons=cli["persons"], seconds=cli["seconds"],
         img_per_s=cli["per_s"], wall_s_with_startup=cli["wall_s"])  # fmt: skip

    offline = Offline(model, [p.read_bytes() for p in images], args.batch, threads)
    pose_limit = offline.pose_limit()
    engine_limit = offline.engine_limit()
    emit("offline_pose_limit", img_per_s=round(pose_limit, 1), crops=offline.crops)
    emit("offline_engine_limit", img_per_s=round(engine_limit, 1))
    emit("folder_vs_offline", cli_img_per_s=cli["per_s"], ratio_to_engine=round(cli["per_s"] / engine_limit, 3),
         ratio_to_pose=round(cli["per_s"] / pose_limit, 3))  # fmt: skip

    if args.frames:
        video = make_video(work / f"street_{args.frames}.mp4", images[: args.frames])
        run = run_predict([video], model, work / "video_results.json", args.batch, threads)
        emit("video", frames=run["frames"], persons=run["persons"], seconds=run["seconds"], frames_per_s=run["per_s"],
             wall_s_with_startup=run["wall_s"], ratio_to_engine=round(run["per_s"] / engine_limit, 3))  # fmt: skip


def synth_folder(work: Path, count: int, seed: int) -> Path:
    from posewheel.synth import generate

    folder = work / f"street_{count}_{seed}"
    if not (folder / "annotations.json").is_file():
        started = time.perf_counter()
        generate("street", count, seed, folder)
        emit("synth", images=count, seconds=round(time.perf_counter() - started, 1))
    return folder


def production_or_pretrained(work: Path) -> Path:
    from posewheel.artifact import ArtifactError, load_card, production_dir
    from posewheel.settings import ProjectSettings

    production = production_dir(ProjectSettings().models_dir)
    try:
        load_card(production)
        return production
    except ArtifactError:
        pass
    folder = work / "models" / "pretrained-movenet-lightning"
    if not (folder / "card.json").is_file():
        from training.pretrained import export_pretrained

        folder = export_pretrained("movenet-lightning", work / "models")
    return folder


def run_predict(paths: list[Path], model: Path, out: Path, batch: int, threads: int) -> dict[str, Any]:
    """`posewheel predict` in its own process; its summary's counts and rate, and the wall time with start-up."""
    cmd = [str(ROOT / ".venv" / "bin" / "posewheel"), "predict", *map(str, paths), "--model", str(model),
           "--out", str(out), "--batch-size", str(batch), "--threads", str(threads), "--no-progress"]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    wall = time.perf_counter() - started
    found = SUMMARY.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-2000:]}")
    images, frames, persons, seconds, per_s = found.groups()
    return {"images": int(images), "frames": int(frames), "persons": int(persons), "seconds": float(seconds),
            "per_s": float(per_s), "wall_s": round(wall, 1)}  # fmt: skip


def make_video(path: Path, images: list[Path], fps: int = 25) -> Path:
    import av
    from PIL import Image

    if path.is_file():
        return path
    tmp = path.with_name(path.name + ".tmp.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        first = Image.open(images[0])
        stream.width, stream.height, stream.pix_fmt = first.width, first.height, "yuv420p"
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_image(Image.open(image).convert("RGB"))):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
    return path


class Offline:
    """The engine in this process without file IO: the limits `posewheel predict` is measured against."""

    def __init__(self, artifact: Path, images: list[bytes], batch: int, threads: int) -> None:
        from serving.engine import load_model
        from serving.reload import fingerprint

        self.model = load_model(artifact.resolve(), fingerprint(artifact), threads)
        self.images, self.batch, self.threads = images, batch, threads
        self.pool = ThreadPoolExecutor(threads)
        self.crops = 0

    def prepare(self, data: bytes) -> Prepared:
        """PoseService.prepare_request without a request: decode, find the persons (or the whole image), crop."""
        from serving.images import decode_image, parse_boxes

        image = decode_image(data, 40_000_000).image
        if self.model.detector is not None:
            return self.model.find_people(image)
        return self.model.read_boxes(image, parse_boxes(None, image.width, image.height, 64))

    def prepare_chunk(self, chunk: list[bytes]) -> list[Prepared]:
        return [self.prepare(data) for data in chunk]

    def finish(self, prepared: list[Prepared]) -> None:
        """One batched inference and decoding of the images' crops, then one answer per confirmed person of each
        image the detector read (`ServedModel.answer`), as `posewheel predict` does."""
        self.model.answer(prepared)

    def pose_limit(self) -> float:
        """Images per second of batched `infer_decode` alone, over crops prepared beforehand."""
        prepared = list(self.pool.map(self.prepare, self.images))
        inputs = np.concatenate([p.inputs for p in prepared])
        windows = [w for p in prepared for w in p.windows]
        self.crops = len(windows)
        self.model.infer_decode(inputs[: self.batch], windows[: self.batch])  # warm-up
        started = time.perf_counter()
        for i in range(0, len(windows), self.batch):
            self.model.infer_decode(inputs[i : i + self.batch], windows[i : i + self.batch])
        return len(self.images) / (time.perf_counter() - started)

    def engine_limit(self) -> float:
        """Images per second with decoding, detection and cropping on the prepare threads overlapped with inference
        and the answers (`finish`)."""
        per_chunk = max(1, self.batch // self.threads)
        chunks = [self.images[i : i + per_chunk] for i in range(0, len(self.images), per_chunk)]
        started = time.perf_counter()
        pending = [self.pool.submit(self.prepare_chunk, chunk) for chunk in chunks[: 2 * self.threads]]
        nxt = len(pending)
        queued: list[Prepared] = []
        while pending:
            queued += pending.pop(0).result()
            if nxt < len(chunks):
                pending.append(self.pool.submit(self.prepare_chunk, chunks[nxt]))
                nxt += 1
            if sum(len(p.windows) for p in queued) >= self.batch or not pending:
                self.finish(queued)
                queued = []
        return len(self.images) / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
