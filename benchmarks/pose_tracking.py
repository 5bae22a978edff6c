"""Who is who in a video: how often a person's track id changes, on clips of real people with known identities.

    .venv/bin/python benchmarks/pose_tracking.py                       # the pretrained Lightning artifact
    .venv/bin/python benchmarks/pose_tracking.py models/production --picture var/tracks.png
    .venv/bin/python benchmarks/pose_tracking.py --kinds crossing          # the two walking clips only

`posewheel predict clip.mp4` gives each person of a video a track id (posewheel.tracks.PoseTracker). This
measures it on videos made here from real photographs, whose people's identities are known in every
frame, so that no labels are needed:

- pans: a camera sweeping across each of the six group photographs `posewheel pretrained fetch` caches
  (3-5 people standing close, 3 s at 25 fps, moving and zooming). A person's identity is the person of
  the whole photograph (as the artifact answers it) nearest where the crop puts them.
- crossings: the check set's three single people (astronaut, cameraman, Grace Hopper) pasted at 300 px on
  a people-free photograph, walking across it so that two of them cross in front of each other
  (4 s at 25 fps). A person's identity is the pasted photograph whose place is nearest.

Every clip is encoded as H.264, read by the product's own `BatchPredictor` once, every frame, its tracks
carrying nobody (`--no-carry`: the detector's persons only), and the frames that `--fps 5` and `--fps 2` keep
are taken from that one run, so each way of linking frames sees the same persons. The baseline is what a
reader had before tracks: a person's place in the frame's list. Ways compared: that list order; keypoint OKS
(MoveNet's keypoint tracker), box IoU with tracks standing still, and box IoU with tracks moving on at their
last velocity (the default), all by PoseTracker.

Then (unless `--no-carrying`) the product as a user runs it, `posewheel predict clip.mp4 --fps F`, once per
sampling rate with its tracks carrying the people the detector misses in a frame (the default since session
60) and once without (`--no-carry`): of the marked people present in the sampled frames, those answered
exactly once and twice or more, answers near nobody, identity switches (tests/support/moving_people.py
`ClipTally`, as benchmarks/live_steadiness.py counts them), and the milliseconds a sampled frame.

Prints one JSON line per artifact, clip kind, sampling rate and way: persons matched to an identity,
identity switches (a known person's id differs from the one it had the last time it was answered) and
IDF1 over matched persons (the share answered with the id that the best one-to-one pairing of ids and
people gives them); one line per artifact with the seconds the tracker took per frame; and one `carrying`
line per artifact, clip kind, sampling rate and carry.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from posewheel.tracks import PoseTracker, Similarity
from serving.engine import ServedModel, load_model
from tests.support.figures import emit
from tests.support.moving_people import (
    FRAME_RATE,
    Clip,
    ClipTally,
    crossing_clips,
    identities,
    identity_scores,
    pan_clips,
    write_video,
)

BENCHMARK = "pose_tracking"
Link = Callable[[list[dict], float, dict], list[int]]  # a frame's results, its time, the clip's state -> ids
SAMPLINGS = {"25fps": None, "5fps": 5.0, "2fps": 2.0}  # None: every frame


def predict_frames(
    model: ServedModel, video: Path, fps: float | None = None, carry: bool = False
) -> tuple[dict[int, list[dict]], float]:
    """The sampled frames' persons as `posewheel predict --fps` answers them (frame index -> COCO results), and the
    run's seconds. `carry` False (`--no-carry`): the detector's persons only, the same whatever links them."""
    from serving.batch_predict import BatchPredictor, Options, find_sources
    from serving.settings import ServingSettings

    options = Options(threads=2, fps=fps, carry=carry)
    predictor = BatchPredictor(model, ServingSettings(model_dir=model.folder), options)
    predictor.run(find_sources([video])[0])
    frames: dict[int, list[dict]] = {}
    for result in predictor.results:
        frames.setdefault(result["frame_index"], []).append(result)
    return frames, predictor.summary.seconds


def carrying(model: ServedModel, clips: list[Clip], folder: Path, fps: float | None, carry: bool) -> dict[str, float]:
    """The product's own answers to the clips at one sampling rate, its tracks carrying the people the detector
    misses or not: `ClipTally`'s figures over the clips, and the seconds a sampled frame."""
    from serving.batch_predict import FrameSampler

    totals: dict[str, float] = {}
    frames, seconds = 0, 0.0
    for clip in clips:
        answered, took = predict_frames(model, folder / f"{clip.kind}_{clip.name}.mp4", fps, carry)
        tally, sampler = ClipTally(clip), FrameSampler(1, fps)
        for index in range(len(clip.frames)):
            if sampler.keep(index, index / FRAME_RATE):
                results = answered.get(index, [])
                keypoints = np.array([r["keypoints"] for r in results], dtype=np.float64).reshape(-1, 17, 3)
                tally.add(index, keypoints[..., :2], keypoints[..., 2], [r["track_id"] for r in results])
                frames += 1
        for name, value in tally.figures().items():
            totals[name] = totals.get(name, 0) + value
        seconds += took
    return {**totals, "frames": frames, "ms_per_frame": round(1000 * seconds / max(1, frames), 1)}


def list_order(results: list[dict], _t: float, _state: dict) -> list[int]:
    """The baseline: a person's place in the frame's list (best first), as answers read before tracks."""
    return list(range(1, len(results) + 1))


def tracker_way(similarity: Similarity, motion: bool) -> Link:
    """One PoseTracker per clip (kept in `state`), fed each sampled frame's persons."""

    def link(results: list[dict], t: float, state: dict) -> list[int]:
        tracker = state.setdefault("tracker", PoseTracker(similarity=similarity, motion=motion))
        keypoints = np.array([r["keypoints"] for r in results], dtype=np.float64).reshape(-1, 17, 3)
        boxes = np.array([r["bbox"] for r in results], dtype=np.float64).reshape(-1, 4)
        started = time.perf_counter()
        ids = tracker.update(keypoints[..., :2], keypoints[..., 2], boxes, t)
        state["seconds"] = state.get("seconds", 0.0) + time.perf_counter() - started
        return [int(i) for i in ids]

    return link


WAYS = {
    "list order": list_order,
    "keypoint OKS, moving": tracker_way("keypoints", motion=True),
    "box IoU, still": tracker_way("boxes", motion=False),
    "box IoU, moving (default)": tracker_way("boxes", motion=True),
}


@dataclass
class Tally:
    """One way of linking over the clips of one kind at one sampling rate."""

    answered: int = 0
    pairs: list[tuple[str, str]] = field(default_factory=list)  # (known person, clip/track id) per matched answer
    switches: int = 0
    tracker_seconds: float = 0.0
    tracker_frames: int = 0


def link_clips(clips: list[Clip], answered: dict[str, dict[int, list[dict]]], fps: float | None, link: Link) -> Tally:
    """Feed each clip's sampled frames (FrameSampler, as `--fps` does) to `link` and tally who got which id."""
    from serving.batch_predict import FrameSampler

    tally = Tally()
    for clip in clips:
        sampler, state, order = FrameSampler(1, fps), {}, []
        for index in range(len(clip.frames)):
            if not sampler.keep(index, index / FRAME_RATE):
                continue
            results = answered[clip.name].get(index, [])
            ids = link(results, index / FRAME_RATE, state)
            persons = identities(results, clip, index)
            order.append([(p, f"{clip.name}/{i}") for p, i in zip(persons, ids, strict=True) if p])
            tally.answered += len(results)
        clip_pairs = [pair for frame in order for pair in frame]
        tally.switches += identity_scores(clip_pairs, order)[0]
        tally.pairs += clip_pairs  # people and ids both named by their clip
        if "seconds" in state:
            tally.tracker_seconds += state["seconds"]
            tally.tracker_frames += len(order)
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", nargs="*", type=Path, help="model folders; default: the pretrained Lightning")
    parser.add_argument(
        "--picture", type=Path, default=None, help="PNG or JPEG: crossing frames, track ids drawn (first artifact)"
    )
    parser.add_argument("--kinds", default="pan,crossing", help="clip kinds to make, comma-separated (pan, crossing)")
    parser.add_argument(
        "--carrying",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the product at each sampling rate with and without its tracks carrying people",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        artifacts = [(str(a), a) for a in args.artifacts]
        if not artifacts:
            from training.pretrained import export_pretrained

            artifacts = [("pretrained movenet-lightning", export_pretrained("movenet-lightning", folder / "models"))]
        kinds = args.kinds.split(",")
        clips = (pan_clips() if "pan" in kinds else []) + (crossing_clips() if "crossing" in kinds else [])
        for clip in clips:
            write_video(clip.frames, folder / f"{clip.kind}_{clip.name}.mp4")
        for n, (label, artifact) in enumerate(artifacts):
            model = load_model(artifact.resolve(), "bench", 2)  # once per artifact: loading runs a smoke test
            answered = {c.name: predict_frames(model, folder / f"{c.kind}_{c.name}.mp4")[0] for c in clips}
            seconds, frames = 0.0, 0
            for kind in kinds:
                for rate, fps in SAMPLINGS.items():
                    for way, link in WAYS.items():
                        tally = link_clips([c for c in clips if c.kind == kind], answered, fps, link)
                        seconds, frames = seconds + tally.tracker_seconds, frames + tally.tracker_frames
                        emit(
                            "identity",
                            benchmark=BENCHMARK,
                            artifact=label,
                            clips=kind,
                            sampling=rate,
                            way=way,
                            answered=tally.answered,
                            matched=len(tally.pairs),
                            id_switches=tally.switches,
                            idf1=round(identity_scores(tally.pairs, [])[1], 4),
                        )
            emit(
                "tracker_cost",
                benchmark=BENCHMARK,
                artifact=label,
                frames=frames,
                ms_per_frame=round(1000 * seconds / max(1, frames), 4),
            )
            if args.carrying:
                for kind in kinds:
                    for rate, fps in SAMPLINGS.items():
                        for carry in (False, True):
                            figures = carrying(model, [c for c in clips if c.kind == kind], folder, fps, carry)
                            emit(
                                "carrying",
                                benchmark=BENCHMARK,
                                artifact=label,
                                clips=kind,
                                sampling=rate,
                                carry=carry,
                                **figures,
                            )
            if args.picture and n == 0:  # the first artifact's
                picture(model, folder, args.picture)


def picture(model: ServedModel, folder: Path, out: Path) -> None:
    """Six frames of the first crossing at 5 fps, as `posewheel predict --render` draws them: each person's
    box in its track's colour with its id (the frames read left to right, top to bottom)."""
    from serving.batch_predict import BatchPredictor, Options, find_sources
    from serving.settings import ServingSettings

    render = folder / "render"
    video = folder / "crossing_nobody_coffee.mp4"
    options = Options(threads=2, fps=5.0, render_dir=render)
    BatchPredictor(model, ServingSettings(model_dir=model.folder), options).run(find_sources([video])[0])
    import av

    with av.open(str(render / video.name)) as container:
        frames = [f.to_image() for f in container.decode(video=0)]
    chosen = [frames[round(k * (len(frames) - 1) / 5)] for k in range(6)]
    width, height = chosen[0].width // 2, chosen[0].height // 2
    grid = Image.new("RGB", (3 * width, 2 * height))
    for k, frame in enumerate(chosen):
        grid.paste(frame.resize((width, height), Image.Resampling.BILINEAR), ((k % 3) * width, (k // 3) * height))
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)


if __name__ == "__main__":
    main()
