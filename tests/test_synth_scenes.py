"""Scenes of several persons: 0 to N people, overlapping and hiding each other, each with exact truth."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from posewheel import cli, synth_cli
from posewheel.dataset import load
from posewheel.schema import V_NOT_LABELED, V_OCCLUDED, V_VISIBLE
from posewheel.synth import DOMAINS, JOINT_OWNERS, OCCLUDER, generate, render_group
from posewheel.synth import figure as parts
from posewheel.synth.group import MIN_VISIBLE_JOINTS, GroupSample
from posewheel.truth import TruthStore


def _scenes(domain: str, seed: int, count: int, persons: tuple[int, int] = (0, 4)) -> list[GroupSample]:
    return [render_group(DOMAINS[domain], seed, index, 128, persons) for index in range(count)]


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection area of two [x, y, w, h] boxes, px^2."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


@pytest.mark.parametrize("domain", ["studio", "street"])
def test_a_batch_holds_every_count_from_empty_images_to_n_people(domain: str) -> None:
    scenes = _scenes(domain, 3, 60)
    counts = [len(s.persons) for s in scenes]
    assert set(counts) == {0, 1, 2, 3, 4}, counts
    assert all(len(s.persons) <= s.drawn <= 4 for s in scenes)
    empty = [s for s in scenes if s.drawn == 0]
    assert empty and all(not s.owners.any() and not (s.labels > 0).any() for s in empty)  # truly nobody there
    exactly = _scenes(domain, 4, 12, (2, 2))
    assert all(s.drawn <= 2 for s in exactly) and sum(s.drawn == 2 for s in exactly) >= 9


@pytest.mark.parametrize("domain", ["studio", "street"])
def test_people_overlap_at_different_scales(domain: str) -> None:
    scenes = _scenes(domain, 5, 60)
    pairs = overlapping = 0
    heights = []
    for scene in scenes:
        boxes = [p.bbox for p in scene.persons]
        heights += [max(b[2], b[3]) for b in boxes]
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                pairs += 1
                overlapping += _overlap(boxes[i], boxes[j]) > 0
    assert overlapping > 0.4 * pairs and overlapping > 20, (overlapping, pairs)
    assert max(heights) > 2.2 * min(heights), (min(heights), max(heights))


@pytest.mark.parametrize("domain", ["studio", "street"])
def test_a_joint_behind_a_nearer_person_is_occluded(domain: str) -> None:
    """v=2 joints show their own limb; v=1 joints lie under another part, a nearer person or an occluder."""
    causes = {"nearer_person": 0, "own_body": 0, "occluder": 0}
    for n, scene in enumerate(_scenes(domain, 6, 60)):
        size = scene.labels.shape[0]
        body = (scene.labels != parts.BACKGROUND) & (scene.labels != OCCLUDER)
        assert np.array_equal(scene.owners > 0, body), n  # the owner map matches the painted parts exactly
        for person in scene.persons:
            assert int((person.keypoints[:, 2] == V_VISIBLE).sum()) >= MIN_VISIBLE_JOINTS
            for j, (x, y, v) in enumerate(person.keypoints):
                px, py = person.projected[j]
                inside = 0 <= px < size and 0 <= py < size
                assert (v == V_NOT_LABELED) == (not inside), (n, person.layer, j)
                if not inside:
                    continue
                owner, part = int(scene.owners[int(y), int(x)]), int(scene.labels[int(y), int(x)])
                if v == V_VISIBLE:
                    assert part == parts.BACKGROUND or (owner == person.layer and part in JOINT_OWNERS[j]), (n, j)
                elif not person.face_hidden[j]:
                    assert v == V_OCCLUDED
                    if part == OCCLUDER:
                        causes["occluder"] += 1
                    elif owner != person.layer:
                        assert owner > person.layer, (n, j)  # only a nearer person is painted over it
                        causes["nearer_person"] += 1
                    else:
                        assert part not in JOINT_OWNERS[j], (n, j)
                        causes["own_body"] += 1
    assert causes["nearer_person"] > 20 and causes["own_body"] > 5, causes
    assert (causes["occluder"] > 5) == (domain == "street"), causes


def test_boxes_hold_exactly_the_drawn_body() -> None:
    """Each box is the tightest one around the person's body, also where a nearer person hides it."""
    for n, scene in enumerate(_scenes("street", 7, 30)):
        for person in scene.persons:
            x, y, w, h = (int(v) for v in person.bbox)
            assert (x, y, w, h) == person.bbox and w > 0 and h > 0
            shown = np.argwhere(scene.owners == person.layer)
            assert len(shown) and shown[:, 0].min() >= y and shown[:, 1].min() >= x, n
            assert shown[:, 0].max() < y + h and shown[:, 1].max() < x + w, n
            labeled = person.keypoints[person.keypoints[:, 2] > 0, :2]
            assert np.all(labeled >= (x - 3, y - 3)) and np.all(labeled <= (x + w + 3, y + h + 3)), n


def test_same_arguments_give_the_same_scene_bytes(tmp_path: Path) -> None:
    one = generate("street", 10, 3, tmp_path / "a", size=96, persons=(0, 4)).root
    two = generate("street", 10, 3, tmp_path / "b", size=96, persons=(0, 4), workers=2).root
    other = generate("street", 10, 4, tmp_path / "c", size=96, persons=(0, 4)).root
    assert one is not None and two is not None and other is not None

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert files(one) == files(two)
    assert files(one)["annotations.json"] != files(other)["annotations.json"]
    single = generate("street", 10, 3, tmp_path / "d", size=96).root
    assert (
        single is not None and files(single)["images/street_3_000000.jpg"] != files(one)["images/street_3_000000.jpg"]
    )


def test_a_scene_set_validates_with_empty_images_and_truth_for_every_person(tmp_path: Path) -> None:
    truth_dir = tmp_path / "truth"
    dataset = generate("studio", 24, 2, tmp_path / "set", size=128, truth_dir=truth_dir, persons=(0, 4))
    loaded = load(dataset.root or tmp_path)  # the same validation as `posewheel validate`
    coco = json.loads((tmp_path / "set" / "annotations.json").read_text())
    assert coco["info"]["persons"] == [0, 4] and len(coco["images"]) == 24
    ids = [a["id"] for a in coco["annotations"]]
    assert ids == list(range(1, len(ids) + 1)) and len(ids) > 24
    by_image = loaded.annotations_by_image()
    assert any(not anns for anns in by_image.values()) and max(len(a) for a in by_image.values()) >= 3
    store = TruthStore(truth_dir)
    for record in loaded.images:
        persons = store.get(hashlib.sha256(loaded.image_path(record).read_bytes()).hexdigest())
        assert persons is not None and len(persons) == len(by_image[record.id])  # [] for an empty image
        for truth, label in zip(persons, by_image[record.id], strict=True):
            assert np.allclose(np.asarray(truth["keypoints"]), label.keypoints, atol=0.01)
            assert np.allclose(truth["bbox"], label.bbox)


def test_the_simulated_annotator_labels_every_person_of_a_scene(tmp_path: Path) -> None:
    from labeling.annotator import noisy_results
    from labeling.results import results_to_persons

    truth_dir = tmp_path / "truth"
    dataset = generate("street", 12, 9, tmp_path / "set", size=128, truth_dir=truth_dir, persons=(0, 4))
    store = TruthStore(truth_dir)
    rng = np.random.default_rng(0)
    seen = set()
    for record in dataset.images:
        persons = store.get(hashlib.sha256(dataset.image_path(record).read_bytes()).hexdigest()) or []
        labels = results_to_persons(noisy_results(persons, 128, 128, 0.5, rng), where=record.file_name)
        assert len(labels) == len(persons), record.file_name
        for truth, label in zip(persons, labels, strict=True):
            kps = np.asarray(truth["keypoints"])
            assert np.array_equal(label.keypoints[:, 2], kps[:, 2])
        seen.add(len(persons))
    assert 0 in seen and max(seen) >= 3


def _run(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    app.command()(cli.validate)
    synth_cli.register(app)
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_the_cli_writes_scenes_and_show_draws_every_person(tmp_path: Path) -> None:
    out = tmp_path / "set"
    code, text = _run("synth", "--domain", "street", "--count", "8", "--seed", "1", "--size", "96",
                      "--out", str(out), "--no-truth", "--persons", "1-4")  # fmt: skip
    assert code == 0 and "8 street images (96x96)" in text and "1-4 per image" in text, text
    code, text = _run("validate", str(out))
    assert code == 0, text
    annotations = load(out).annotations
    assert len(annotations) > 8
    code, text = _run("show", str(out), "--out", str(tmp_path / "grid.png"), "--count", "8", "--cell", "96")
    assert code == 0, text
    for bad, message in (("5-2", "0 <= lo <= hi"), ("a-b", "expected LO-HI"), ("0-99", "<= 16")):
        code, text = _run("synth", "--domain", "studio", "--count", "2", "--out", str(tmp_path / "x"),
                          "--persons", bad)  # fmt: skip
        assert code == 2 and message in text, (bad, text)
    assert not (tmp_path / "x").exists()


def test_show_draws_the_box_of_every_person(tmp_path: Path) -> None:
    from PIL import Image

    from posewheel.draw import BOX_COLOUR

    dataset = generate("studio", 6, 1, tmp_path / "set", size=128, persons=(3, 3))
    code, text = _run("show", str(dataset.root), "--out", str(tmp_path / "grid.png"), "--count", "6",
                      "--columns", "6", "--cell", "128")  # fmt: skip
    assert code == 0, text
    grid = np.asarray(Image.open(tmp_path / "grid.png").convert("RGB"))
    by_image = dataset.annotations_by_image()
    for n, record in enumerate(sorted(dataset.images, key=lambda r: r.id)):
        tile = grid[:, n * 128 : (n + 1) * 128]
        for ann in by_image[record.id]:
            x, y, w, h = (round(v) for v in ann.bbox)
            left, top = tile[y : y + h, max(x - 1, 0) : x + 1], tile[max(y - 1, 0) : y + 1, x : x + w]
            for edge in (left, top):
                assert (edge == BOX_COLOUR).all(axis=-1).any(), (record.file_name, ann.id)


def test_the_truth_of_an_empty_scene_is_no_one_not_unknown(tmp_path: Path) -> None:
    store = TruthStore(tmp_path / "truth")
    empty, unknown = hashlib.sha256(b"nobody here").hexdigest(), hashlib.sha256(b"never stored").hexdigest()
    store.put(empty, [])
    assert store.get(empty) == [] and store.get(unknown) is None
