"""`posewheel predict`: a folder of real photos, a broken file and a video, in process, with the server's engine.

The artifact is the pretrained one a fresh install serves (MoveNet Lightning with the MultiPose person
detector). The video is made here with PyAV from the real photos, a few frames each.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from posewheel import artifact
from posewheel.review import Outbox
from serving.batch_predict import FrameSampler, find_sources, upright_frame
from serving.cli import register
from tests.support.server import run_server, test_settings

PHOTOS = Path(__file__).parent / "fixtures" / "real_photos"
FPS = 10
# The video: frame i shows VIDEO_FRAMES[i]; with --every 2 frames 0, 2, 4, 6 are predicted.
VIDEO_FRAMES = ["astronaut_256"] * 3 + ["two_people_256"] * 3 + ["nobody_cat_256"] * 2
PERSONS_IN = {"astronaut_256": 1, "two_people_256": 2, "nobody_cat_256": 0, "cameraman_256": 1}


def make_video(path: Path, names: list[str], fps: int = FPS) -> None:
    """An H.264 MP4 of the real photos `names` (256 x 256), one frame each, at `fps` frames per second."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 256, 256, "yuv420p"
        stream.options = {"crf": "12"}
        for name in names:
            frame = av.VideoFrame.from_image(Image.open(PHOTOS / f"{name}.png").convert("RGB"))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def production(pretrained_artifact: Path) -> Path:
    return artifact.production_dir(pretrained_artifact.parent)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """photos/: two photos, a broken JPEG, an unreadable video, and sub/ with a photo and the video."""
    folder = tmp_path_factory.mktemp("photos")
    for name in ("two_people_256", "nobody_cat_256"):
        shutil.copy(PHOTOS / f"{name}.png", folder / f"{name}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 and then nothing a decoder can use")
    (folder / "notes.txt").write_text("not an image, not a video: not an input")
    (folder / "sub").mkdir()
    shutil.copy(PHOTOS / "cameraman_256.png", folder / "sub" / "cameraman_256.png")
    make_video(folder / "sub" / "clip.mp4", VIDEO_FRAMES)
    return folder


def predict(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run `posewheel predict ARGS` in this process; (exit code, stdout + stderr)."""
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["predict", *args, "--threads", "2", "--no-progress"], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def folder_run(inputs: Path, production: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    out = tmp_path_factory.mktemp("out")
    code, output = predict(
        str(inputs), "--model", str(production), "--out", str(out / "results.json"), "--every", "2",
        "--render", str(out / "render"),
    )  # fmt: skip
    yield {"code": code, "output": output, "results": json.loads((out / "results.json").read_text()), "out": out}


def by_file(results: list[dict], name: str) -> list[dict]:
    return [r for r in results if Path(r["file_name"]).name == name]


def test_broken_files_are_reported_and_counted_and_the_rest_predicted(folder_run: dict, inputs: Path) -> None:
    assert folder_run["code"] == 1, folder_run["output"]
    assert f"{inputs / 'broken.jpg'}: " in folder_run["output"]  # named, with why
    assert f"{inputs / 'broken.mp4'}: video could not be read" in folder_run["output"]
    assert "3 images, 4 frames, " in folder_run["output"]
    assert "2 files failed" in folder_run["output"]
    assert "notes.txt" not in json.dumps(folder_run["results"])


def test_results_are_coco_keypoint_results_with_every_person(folder_run: dict) -> None:
    results = folder_run["results"]
    for r in results:
        assert r["category_id"] == 1
        assert len(r["keypoints"]) == 17 * 3
        assert 0.0 <= r["score"] <= 1.0 and len(r["bbox"]) == 4
    assert len(by_file(results, "two_people_256.png")) == 2
    assert len(by_file(results, "cameraman_256.png")) == 1
    assert by_file(results, "nobody_cat_256.png") == []
    ids = {r["file_name"]: r["image_id"] for r in results if "frame_index" not in r}
    assert len(set(ids.values())) == len(ids)  # one id per image


def test_video_frames_carry_their_index_and_time_and_their_persons(folder_run: dict) -> None:
    frames = by_file(folder_run["results"], "clip.mp4")
    persons: dict[int, int] = {}
    for r in frames:
        assert r["timestamp_s"] == pytest.approx(r["frame_index"] / FPS, abs=1e-3)
        persons[r["frame_index"]] = persons.get(r["frame_index"], 0) + 1
    # every 2nd frame: 0, 2 (astronaut), 4 (two people), 6 (nobody: no result)
    assert persons == {0: 1, 2: 1, 4: 2}
    assert len({r["image_id"] for r in frames}) == 3


def test_render_writes_an_overlay_per_image_and_a_video(folder_run: dict) -> None:
    render = folder_run["out"] / "render"
    assert Image.open(render / "two_people_256.png").size == (256, 256)
    assert (render / "sub" / "cameraman_256.png").is_file()
    with av.open(str(render / "sub" / "clip.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 4
    assert not (render / "broken.jpg.png").exists()


def test_image_keypoints_equal_the_apis(folder_run: dict, inputs: Path, production: Path, tmp_path: Path) -> None:
    with run_server(test_settings(tmp_path, production, intra_op_threads=2)) as server:
        for name in ("two_people_256.png", "cameraman_256.png"):
            files = {"image": (name, (PHOTOS / name).read_bytes(), "image/png")}
            r = httpx.post(f"{server.url}/v1/predict", files=files, timeout=60)
            assert r.status_code == 200, r.text
            api = [
                ([v for k in p["keypoints"] for v in (k["x"], k["y"], k["score"])], p["box"], p["score"])
                for p in r.json()["poses"]
            ]
            cli = [(c["keypoints"], c["bbox"], c["score"]) for c in by_file(folder_run["results"], name)]
            assert len(cli) == len(api)
            for (ck, cb, cs), (ak, ab, as_) in zip(cli, api, strict=True):
                assert cb == ab  # the detector's boxes: the same numbers
                # the same numbers, though the CLI batches these crops with other images' crops
                assert ck == ak and cs == as_


def test_fps_sampling_takes_the_first_frame_of_each_slot(inputs: Path, production: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code, output = predict(
        str(inputs / "sub" / "clip.mp4"), "--model", str(production), "--out", str(out), "--fps", "4"
    )
    assert code == 0, output
    # 10 fps sampled at 4 per second: the first frame of each 0.25 s slot, frames 0, 3 and 5 (of 0..7)
    assert sorted({r["frame_index"] for r in json.loads(out.read_text())}) == [0, 3, 5]
    assert "0 images, 3 frames, 5 persons" in output


def test_review_queues_items_with_the_servers_policy_and_outbox(inputs: Path, production: Path, tmp_path: Path) -> None:
    env = {
        "POSEWHEEL_VAR_DIR": str(tmp_path / "var"),
        "POSEWHEEL_REVIEW_THRESHOLD": "1.0",  # every pose is below it: everything with a person is queued
        "POSEWHEEL_REVIEW_RANDOM_FRACTION": "0",
    }
    out = tmp_path / "r.json"
    photos = [str(PHOTOS / "two_people_256.png"), str(PHOTOS / "nobody_cat_256.png")]
    code, output = predict(*photos, "--model", str(production), "--out", str(out), "--review", env=env)
    assert code == 0, output
    items = Outbox(tmp_path / "var" / "outbox").pending()
    results = json.loads(out.read_text())
    two = [i for i in items if i.width == 256 and len(i.poses) == 2]
    assert len(two) == 1 and two[0].reason == "low_confidence"
    assert two[0].source == photos[0]  # the file, as named
    assert Path(two[0].image_path).read_bytes() == (PHOTOS / "two_people_256.png").read_bytes()
    assert [p.score for p in two[0].poses] == [r["score"] for r in by_file(results, "two_people_256.png")]
    assert len(list((tmp_path / "var" / "predictions").glob("*.jsonl"))) == 1


def test_a_crowd_is_tiled_unless_told_not_to(production: Path, tmp_path: Path) -> None:
    """44 people in one picture (the six group photographs twice, four to a row: tests/support/moving_people.py
    BIG_GROUPS): the whole picture finds a few of them, each under 96 input pixels tall, and the detector's
    second look in tiles answers many more (benchmarks/big_groups.py: 42 at marked noses, 23 without);
    `--no-tiles` and POSEWHEEL_DETECTOR_TILES=false give the whole picture's answer only."""
    from tests.support.moving_people import big_group_set

    data, _ = big_group_set(tmp_path, ["44_people"])
    (tmp_path / "crowd.jpg").write_bytes((data / "images" / "44_people.jpg").read_bytes())
    counts = {}
    for name, args, env in (
        ("tiles", [], None),
        ("no_tiles", ["--no-tiles"], None),
        ("env_off", [], {"POSEWHEEL_DETECTOR_TILES": "false"}),
    ):
        out = tmp_path / f"{name}.json"
        code, output = predict(str(tmp_path / "crowd.jpg"), "--model", str(production), "--out", str(out), *args,
                               env=env)  # fmt: skip
        assert code == 0, output
        counts[name] = len(json.loads(out.read_text()))
    assert counts["tiles"] >= counts["no_tiles"] + 5 and counts["no_tiles"] == counts["env_off"] > 0, counts


def test_each_person_of_a_crowd_is_read_alone_unless_told_not_to(production: Path, tmp_path: Path) -> None:
    """Two group photographs side by side (sample4 and sample5 at 900 px tall, 9 people): a person whose crop
    holds another's box is read blanked outside their own, which answers more of them (measured 7 answers
    against 5, each at a marked nose: benchmarks/people_found.py); `--no-read-alone` and
    POSEWHEEL_DETECTOR_READ_ALONE=false read every crop as it is."""
    from posewheel.pretrained import real_frames
    from tests.support.moving_people import crowd

    photos = {}
    for path in real_frames():
        if path.stem in ("sample4", "sample5"):
            with Image.open(path) as raw:
                photos[path.stem] = raw.convert("RGB")
    crowd(photos, ("sample4", "sample5"), 900, 2)[0].save(tmp_path / "two.jpg", quality=95)
    counts = {}
    for name, args, env in (
        ("alone", [], None),
        ("flag_off", ["--no-read-alone"], None),
        ("env_off", [], {"POSEWHEEL_DETECTOR_READ_ALONE": "false"}),
    ):
        out = tmp_path / f"{name}.json"
        code, output = predict(str(tmp_path / "two.jpg"), "--model", str(production), "--out", str(out), *args,
                               env=env)  # fmt: skip
        assert code == 0, output
        counts[name] = len(json.loads(out.read_text()))
    assert counts["alone"] > counts["flag_off"] == counts["env_off"] > 0, counts


def test_a_person_upside_down_is_answered_unless_told_to_read_upright_only(production: Path, tmp_path: Path) -> None:
    """The check set's astronaut upside down: read turned, she is answered (benchmarks/turned_people.py); with
    `--no-turns` and POSEWHEEL_DETECTOR_TURNS=false she is read upright only and nobody is answered."""
    from tests.support.moving_people import turned

    with Image.open(PHOTOS / "astronaut_512.png") as raw:
        turned(raw.convert("RGB"), np.zeros((0, 2)), 2)[0].save(tmp_path / "upside_down.jpg", quality=95)
    counts = {}
    for name, args, env in (
        ("turns", [], None),
        ("flag_off", ["--no-turns"], None),
        ("env_off", [], {"POSEWHEEL_DETECTOR_TURNS": "false"}),
    ):
        out = tmp_path / f"{name}.json"
        code, output = predict(str(tmp_path / "upside_down.jpg"), "--model", str(production), "--out", str(out), *args,
                               env=env)  # fmt: skip
        assert code == 0, output
        counts[name] = len(json.loads(out.read_text()))
    assert counts == {"turns": 1, "flag_off": 0, "env_off": 0}, counts


def test_a_group_photograph_turned_where_the_detector_finds_nobody_is_probed_unless_told_not_to(
    production: Path, tmp_path: Path
) -> None:
    """A group photograph of three turned three quarters: the detector is sure of nobody, and no read votes for a
    turn; looked at small, turned each way, it is sure of three, and the people found turned upright are answered
    (measured 3 of 3; benchmarks/turned_people.py). `--no-probe-turns` and POSEWHEEL_DETECTOR_PROBE_TURNS=false leave
    it to the votes: nobody is answered. (sample1 until session 53: with crops that count every pixel the detector
    finds a box at 0.46 in it, and its reads vote for a half turn.)"""
    from tests.support.moving_people import group_photos, turned

    turned(group_photos()["sample3"], np.zeros((0, 2)), 3)[0].save(tmp_path / "sideways.jpg", quality=95)
    counts = {}
    for name, args, env in (
        ("probe", [], None),
        ("flag_off", ["--no-probe-turns"], None),
        ("env_off", [], {"POSEWHEEL_DETECTOR_PROBE_TURNS": "false"}),
    ):
        out = tmp_path / f"{name}.json"
        code, output = predict(str(tmp_path / "sideways.jpg"), "--model", str(production), "--out", str(out), *args,
                               env=env)  # fmt: skip
        assert code == 0, output
        counts[name] = len(json.loads(out.read_text()))
    assert counts["probe"] >= 2 and counts["flag_off"] == counts["env_off"] == 0, counts


def test_a_person_the_detector_is_unsure_of_is_answered_where_the_pose_network_confirms_it(
    production: Path, tmp_path: Path
) -> None:
    """A drawn street scene (seed 5, image 9) whose person the detector scores under its threshold: the pose
    network reads a confident pose in the box, so she is answered, with her box score under the threshold;
    `--no-pose-confirms` and POSEWHEEL_DETECTOR_POSE_CONFIRMS=false answer nobody (the threshold alone)."""
    from posewheel.detection import CONFIDENT_POSE
    from posewheel.synth import generate

    ds = generate("street", 9, 5, tmp_path / "scenes", persons=(2, 3))
    scene = ds.image_path(ds.images[8])
    threshold = json.loads((production / "card.json").read_text())["detector"]["score_threshold"]
    answered = {}
    for name, args, env in (
        ("confirms", [], None),
        ("flag_off", ["--no-pose-confirms"], None),
        ("env_off", [], {"POSEWHEEL_DETECTOR_POSE_CONFIRMS": "false"}),
    ):
        out = tmp_path / f"{name}.json"
        code, output = predict(str(scene), "--model", str(production), "--out", str(out), *args, env=env)
        assert code == 0, output
        answered[name] = json.loads(out.read_text())
    (person,) = answered["confirms"]  # measured: box score 0.19-0.29, pose score 0.4 and more
    assert person["box_score"] < threshold and person["score"] >= CONFIDENT_POSE, person
    assert answered["flag_off"] == answered["env_off"] == []


def test_missing_path_fails_and_unknown_folder_files_are_not_inputs(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.mp4").write_bytes(b"")
    (tmp_path / "c.txt").write_bytes(b"")
    (tmp_path / "IMG_0001.HEIC").write_bytes(b"")  # an iPhone's photograph, named as the phone names it
    sources, missing = find_sources([tmp_path, tmp_path / "nope.jpg"])
    expected = [("IMG_0001.HEIC", "image"), ("a.png", "image"), ("b.mp4", "video")]
    assert [(s.rel.name, s.kind) for s in sources] == expected
    assert list(missing) == [str(tmp_path / "nope.jpg")]


def test_frame_sampler_every_and_fps() -> None:
    every = FrameSampler(every=3)
    assert [i for i in range(10) if every.keep(i, i / 30)] == [0, 3, 6, 9]
    per_second = FrameSampler(fps=2.0)
    assert [i for i in range(60) if per_second.keep(i, i / 30)] == [0, 15, 30, 45]


def test_a_sideways_phone_video_is_predicted_upright(tmp_path: Path) -> None:
    image = Image.new("RGB", (64, 32), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 16, 16))  # blue top left
    with av.open(str(tmp_path / "phone.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(-90)  # shown turned 90 degrees clockwise, as a phone held upright films
        for packet in [*stream.encode(av.VideoFrame.from_image(image)), *stream.encode()]:
            container.mux(packet)
    with av.open(str(tmp_path / "phone.mp4")) as container:
        upright = upright_frame(next(container.decode(video=0)))
    assert upright.size == (32, 64)
    r, _, b = upright.getpixel((28, 4))  # type: ignore[misc]
    assert b > 200 and r < 60  # the blue corner is now top right


def test_a_phones_heic_photo_is_predicted_upright(production: Path, tmp_path: Path) -> None:
    """The HEIC an iPhone stores turned (tests/fixtures/heic) is answered as the upright picture it holds."""
    from tests.fixtures.heic.make_heic import FIXTURE, upright

    shutil.copy(FIXTURE, tmp_path / "IMG_0001.HEIC")
    upright().save(tmp_path / "upright.png")
    code, output = predict(str(tmp_path), "--model", str(production), "--out", str(tmp_path / "r.json"))
    assert code == 0, output
    results = json.loads((tmp_path / "r.json").read_text())
    (heic,), (png,) = by_file(results, "IMG_0001.HEIC"), by_file(results, "upright.png")
    a, b = (np.reshape(r["keypoints"], (17, 3)) for r in (heic, png))
    confident = np.minimum(a[:, 2], b[:, 2]) > 0.3
    distance = np.hypot(*(a[confident, :2] - b[confident, :2]).T)
    # as a JPEG of it would be; 11 confident in both until session 53, 9 with crops that count every pixel (the elbows
    # 0.27-0.28 in both)
    assert confident.sum() >= 9 and np.median(distance) < 3 and distance.max() < 15
