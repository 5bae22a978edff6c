"""The synthetic generator's promises: reproducible bytes, truthful visibility, the person's own left."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posewheel.dataset import Dataset, ImageRecord, PersonAnnotation, load, validate
from posewheel.draw import draw_poses
from posewheel.schema import FLIP_INDEX, KEYPOINT_INDEX, V_NOT_LABELED, V_OCCLUDED, V_VISIBLE, flip_keypoints
from posewheel.synth import DOMAINS, JOINT_OWNERS, OCCLUDER, generate, render_sample
from posewheel.synth import figure as parts
from posewheel.synth.render import visibility
from posewheel.truth import TruthStore

K = KEYPOINT_INDEX
FACE = [K[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]


def _folder_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_arguments_give_byte_identical_datasets(tmp_path: Path) -> None:
    for domain in ("studio", "street"):
        one = generate(domain, 12, 7, tmp_path / f"{domain}_a").root
        two = generate(domain, 12, 7, tmp_path / f"{domain}_b", workers=2).root  # chunked in 2 processes
        other = generate(domain, 12, 8, tmp_path / f"{domain}_c").root
        assert one is not None and two is not None and other is not None
        first, second = _folder_bytes(one), _folder_bytes(two)
        assert len(first) == 13 and first == second
        assert _folder_bytes(other)["annotations.json"] != first["annotations.json"]
    names = sorted(p.name for p in (tmp_path / "street_a" / "images").iterdir())
    assert names[0] == "street_7_000000.jpg" and names[-1] == "street_7_000011.jpg"


# SHA-256 over (relative path, bytes) of every file of generate(domain, 6, seed=7, size=256) and of
# its truth store, computed with the one-person generator before scenes of several persons were
# added (Pillow 13.0, numpy 2.2). The flywheel's measured figures rest on these bytes: a change here
# must be deliberate (and bump GENERATOR_VERSION), never a side effect.
ONE_PERSON_DIGESTS = {
    "studio": "6581932a8abb9460e4fe5adf3134004263a7f7dd7a29f4c0d40f36ce830aec56",
    "street": "46cb79ef5e924fe3f32f9808ca343d5e17bd630b16d09b4d504612f3cced47eb",
}


@pytest.mark.parametrize("domain", ["studio", "street"])
def test_one_person_output_keeps_its_bytes(domain: str, tmp_path: Path) -> None:
    generate(domain, 6, 7, tmp_path / "set", size=256, truth_dir=tmp_path / "truth")
    digest = hashlib.sha256()
    for root in (tmp_path / "set", tmp_path / "truth"):
        for path in sorted(root.rglob("*")):
            if path.is_file():
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    assert digest.hexdigest() == ONE_PERSON_DIGESTS[domain]


def test_every_image_is_reproducible_alone() -> None:
    alone = render_sample(DOMAINS["street"], 3, 41)
    again = render_sample(DOMAINS["street"], 3, 41)
    assert np.array_equal(np.asarray(alone.image), np.asarray(again.image))
    assert np.array_equal(alone.keypoints, again.keypoints)


def test_occluded_joints_are_covered_by_an_occluder_or_another_body_part() -> None:
    """v=1 pixels belong to an occluder or another part, v=2 to the joint's own limb, v=0 lie outside."""
    by_cause = {"occluder": 0, "own_body": 0, "turned_away": 0}
    visible = 0
    for index in range(80):
        sample = render_sample(DOMAINS["street"], 11, index)
        height, width = sample.labels.shape
        for j, (x, y, v) in enumerate(sample.keypoints):
            px, py = sample.projected[j]
            inside = 0 <= px < width and 0 <= py < height
            assert (v == V_NOT_LABELED) == (not inside), f"image {index} joint {j}: v={v} at ({px:.1f}, {py:.1f})"
            if not inside:
                continue
            owner = int(sample.labels[int(y), int(x)])
            if v == V_VISIBLE:
                assert owner in JOINT_OWNERS[j] or owner == parts.BACKGROUND, f"image {index} joint {j}"
                visible += 1
            elif sample.face_hidden[j]:
                assert j in FACE
                by_cause["turned_away"] += 1
            else:
                assert owner not in JOINT_OWNERS[j] and owner != parts.BACKGROUND, f"image {index} joint {j}"
                by_cause["occluder" if owner == OCCLUDER else "own_body"] += 1
    assert visible > 600 and min(by_cause.values()) > 10, by_cause


def test_left_and_right_are_the_persons_own_whichever_way_they_face() -> None:
    seen = set()
    for index in range(40):
        sample = render_sample(DOMAINS["studio"], 2, index)  # upright, roll within 5 degrees
        kps = sample.keypoints
        sign = 1 if sample.facing == "front" else -1  # facing the camera, the person's left is image right
        for name in ("shoulder", "hip"):
            assert sign * (kps[K[f"left_{name}"], 0] - kps[K[f"right_{name}"], 0]) > 0, (index, name)
        if sample.facing == "back":  # seen from behind the face is hidden by the head itself
            assert all(kps[K[n], 2] == V_OCCLUDED for n in ("nose", "left_eye", "right_eye"))
        else:
            assert kps[K["nose"], 2] == V_VISIBLE or sample.labels[int(kps[0, 1]), int(kps[0, 0])] != parts.HEAD
        seen.add(sample.facing)
    assert seen == {"front", "back"}


_PART_FLIP = {
    parts.L_UPPER_ARM: parts.R_UPPER_ARM, parts.L_FOREARM: parts.R_FOREARM, parts.L_HAND: parts.R_HAND,
    parts.L_THIGH: parts.R_THIGH, parts.L_SHIN: parts.R_SHIN, parts.L_FOOT: parts.R_FOOT,
}  # fmt: skip


def test_a_flipped_image_with_swapped_pairs_is_a_valid_annotation() -> None:
    """Mirror image, part map and keypoints: the flipped labels agree with the flipped rendering."""
    swap = np.arange(256, dtype=np.uint8)
    for a, b in _PART_FLIP.items():
        swap[a], swap[b] = b, a
    for index in range(20):
        sample = render_sample(DOMAINS["street"], 5, index)
        width = sample.image.width
        flipped = flip_keypoints(sample.keypoints, width)
        labels = swap[sample.labels[:, ::-1]]
        joints = np.where(flipped[:, 2:] > 0, flipped[:, :2], -1.0)  # v=0 joints stay outside
        hidden = sample.face_hidden[list(FLIP_INDEX)]
        assert np.array_equal(visibility(joints, labels, hidden), flipped[:, 2].astype(np.int64)), index
        x, y, w, h = sample.bbox
        mirrored = Dataset(
            images=[ImageRecord(1, "flipped.jpg", width, width)],
            annotations=[PersonAnnotation(1, 1, flipped, (width - x - w, y, w, h))],
        )
        assert validate(mirrored, check_files=False) == []


def test_pycocotools_reads_our_files_and_scores_the_labels_as_perfect(studio_set: Dataset) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    assert studio_set.root is not None
    coco = COCO(str(studio_set.root / "annotations.json"))
    assert len(coco.getImgIds()) == 48 and coco.loadCats(1)[0]["keypoints"][0] == "nose"
    for ann in coco.loadAnns(coco.getAnnIds()):
        kps = np.asarray(ann["keypoints"]).reshape(17, 3)
        assert ann["num_keypoints"] == int((kps[:, 2] > 0).sum())
        assert set(np.unique(kps[:, 2])) <= {0, 1, 2}
        img = coco.loadImgs(ann["image_id"])[0]
        assert Path(studio_set.root / "images" / img["file_name"]).is_file()
    results = [dict(a, score=1.0) for a in coco.loadAnns(coco.getAnnIds())]
    evaluation = COCOeval(coco, coco.loadRes(results), "keypoints")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)


def test_truth_is_kept_apart_and_found_by_image_bytes(street_set: Dataset, truth_dir: Path) -> None:
    assert street_set.root is not None
    assert not str(truth_dir).startswith(str(street_set.root))
    store = TruthStore(truth_dir)
    by_image = street_set.annotations_by_image()
    for record in street_set.images:
        digest = hashlib.sha256(street_set.image_path(record).read_bytes()).hexdigest()
        persons = store.get(digest)
        assert persons is not None and len(persons) == 1
        label = by_image[record.id][0]
        assert np.allclose(np.asarray(persons[0]["keypoints"]), label.keypoints, atol=0.01)
        assert np.allclose(persons[0]["bbox"], label.bbox)
    assert store.get("0" * 64) is None and store.get("../../etc/passwd") is None
    with pytest.raises(ValueError, match="SHA-256"):
        store.put("../escape", [])


def test_street_is_a_harder_domain_than_studio(studio_set: Dataset, street_set: Dataset) -> None:
    def stats(ds: Dataset) -> tuple[float, float, float]:
        kps = np.stack([a.keypoints for a in ds.annotations])
        occluded_body = float((kps[:, 5:, 2] == V_OCCLUDED).mean())  # not the face turned away
        spine = kps[:, K["left_hip"], :2] - kps[:, K["left_shoulder"], :2]
        torso_angle_spread = float(np.degrees(np.arctan2(spine[:, 0], spine[:, 1])).std())
        grey = [np.asarray(Image.open(ds.image_path(i)).convert("L"), dtype=np.float64) for i in ds.images[:16]]
        texture = float(np.mean([np.abs(np.diff(g, axis=1)).mean() for g in grey]))  # mean gradient
        return occluded_body, torso_angle_spread, texture

    studio, street = stats(studio_set), stats(street_set)
    assert street[0] > studio[0] + 0.05, (studio, street)  # more occluded body joints
    assert street[1] > 2.5 * studio[1], (studio, street)  # a much wider range of body orientation
    assert street[2] > 2 * studio[2], (studio, street)  # clutter and noise, not plain backdrops
    assert load(street_set.root or Path()).info["domain"] == "street"


def test_draw_poses_fills_visible_joints_and_rings_occluded_ones() -> None:
    kps = np.zeros((17, 3))
    kps[K["nose"]] = (20.5, 20.5, V_VISIBLE)
    kps[K["left_wrist"]] = (60.5, 60.5, V_OCCLUDED)  # its elbow is unlabeled: no edge through it
    kps[K["right_wrist"]] = (90.5, 20.5, V_NOT_LABELED)
    out = np.asarray(draw_poses(Image.new("RGB", (100, 100)), kps[None], radius=5))
    assert out[20, 20].sum() > 0  # filled disc
    assert out[60, 60].sum() == 0 and out[62, 60].sum() == 0 and out[60, 55].sum() > 0  # hollow ring
    assert out[20, 90].sum() == 0  # unlabeled: not drawn
    scores = np.array([[0.9] + [0.0] * 16])
    predicted = np.asarray(draw_poses(Image.new("RGB", (100, 100)), kps[None, :, :2], scores=scores, radius=5))
    # below the threshold a prediction is drawn hollow (its edges still end at its centre)
    assert predicted[20, 20].sum() > 0 and predicted[62, 60].sum() == 0 and predicted[60, 55].sum() > 0
    truth_vs_prediction = draw_poses(Image.new("RGB", (100, 100)), [kps, kps], colors=[(0, 200, 0), (230, 0, 0)])
    assert tuple(np.asarray(truth_vs_prediction)[20, 20]) == (230, 0, 0)  # the later person is on top


def test_annotations_carry_facing_and_generator_info(studio_set: Dataset) -> None:
    assert studio_set.root is not None
    coco = json.loads((studio_set.root / "annotations.json").read_text())
    assert coco["info"]["generator"].startswith("posewheel.synth") and coco["info"]["count"] == 48
    assert {a["facing"] for a in coco["annotations"]} == {"front", "back"}


def test_truth_store_round_trips_and_refuses_malformed_persons(tmp_path: Path) -> None:
    store = TruthStore(tmp_path / "truth")
    digest = hashlib.sha256(b"an image").hexdigest()
    kps = np.concatenate([np.full((17, 2), 12.3456), np.full((17, 1), 2.0)], axis=1)
    store.put(digest, [{"keypoints": kps, "bbox": [1, 2, 30, 40]}])
    assert digest in store and store.path_for(digest).parent.name == digest[:2]
    [person] = store.get(digest) or []
    assert person["keypoints"][0] == [12.35, 12.35, 2] and person["bbox"] == [1, 2, 30, 40]
    with pytest.raises(ValueError, match=r"keypoints shape \(16, 3\)"):
        store.put(digest, [{"keypoints": kps[:16], "bbox": [1, 2, 3, 4]}])
    assert store.get(digest) == [person]  # the refused put changed nothing
