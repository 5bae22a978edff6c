"""A user's own dataset of phone photographs: stored turned, with the turn in their EXIF, and annotated upright
(as every viewer and annotation tool shows them). Training, evaluation and `posewheel show` read each image in
the frame its record's width and height name (`posewheel.imagestore.read_rgb`); `posewheel validate` refuses a
record that fits neither frame, and a HEIC, with a sentence saying so."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posewheel.dataset import ANNOTATIONS_FILE, DatasetError, load
from posewheel.imagestore import ImageReadError, read_rgb
from posewheel.schema import PERSON_CATEGORY
from tests.fixtures.heic.make_heic import FIXTURE
from tests.support.onnx_models import spot_image
from tests.support.real_photos import PHOTOS

# EXIF orientation -> how a phone stores the upright picture (the reader's transpose undoes it)
STORED = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}


def _turned_jpeg(upright: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    upright.transpose(STORED[orientation]).save(out, format="JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue()


def _dataset(root: Path, images: list[tuple[str, bytes, int, int]], keypoints: list[list[float]]) -> Path:
    """A one-person-per-image COCO dataset at `root`: (file name, bytes, record width, record height) each."""
    (root / "images").mkdir(parents=True)
    records, annotations = [], []
    for i, ((name, data, width, height), flat) in enumerate(zip(images, keypoints, strict=True), start=1):
        (root / "images" / name).write_bytes(data)
        records.append({"id": i, "file_name": name, "width": width, "height": height})
        xs, ys = flat[0::3], flat[1::3]
        x0, y0 = max(min(xs) - 16, 0), max(min(ys) - 16, 0)
        box = [x0, y0, min(max(xs) + 16, width) - x0, min(max(ys) + 16, height) - y0]
        annotations.append({"id": i, "image_id": i, "category_id": 1, "keypoints": flat, "num_keypoints": 17,
                            "bbox": box, "area": box[2] * box[3], "iscrowd": 0})  # fmt: skip
    coco = {"images": records, "annotations": annotations, "categories": [PERSON_CATEGORY]}
    (root / ANNOTATIONS_FILE).write_text(json.dumps(coco))
    return root


def test_a_turned_photo_is_read_in_the_frame_its_record_names(tmp_path: Path) -> None:
    upright = Image.open(io.BytesIO(spot_image(60, 40, (50, 10)))).convert("RGB")  # bright spot top right
    path = tmp_path / "IMG_0001.jpg"
    path.write_bytes(_turned_jpeg(upright, 6))
    with Image.open(path) as stored:
        assert stored.size == (40, 60)
        stored_rgb = np.asarray(stored.convert("RGB"), np.int16)
    plain = np.asarray(upright, np.int16)
    for size in ((60, 40), None):  # a record of the upright size, and no record: upright
        read = np.asarray(read_rgb(path, size), np.int16)
        assert read.shape == plain.shape and np.abs(read - plain).mean() < 2
    # a record of the stored size: an annotation tool that ignored the turn; its coordinates mean the stored pixels
    assert np.array_equal(np.asarray(read_rgb(path, (40, 60)), np.int16), stored_rgb)


def test_validate_names_a_record_that_fits_neither_frame_and_a_heic(tmp_path: Path) -> None:
    upright = Image.open(io.BytesIO(spot_image(60, 40, (50, 10)))).convert("RGB")
    turned = _turned_jpeg(upright, 6)
    flat = [float(v) for _ in range(17) for v in (20, 20, 2)]
    for width, height in ((60, 40), (40, 60)):  # upright, or as stored: both frames load
        assert load(_dataset(tmp_path / f"ok{width}", [("a.jpg", turned, width, height)], [flat]))
    bad = _dataset(
        tmp_path / "bad",
        [("a.jpg", turned, 50, 50), ("IMG_0002.HEIC", FIXTURE.read_bytes(), 384, 512), ("c.jpg", b"junk", 60, 40)],
        [flat, flat, flat],
    )
    with pytest.raises(DatasetError) as caught:
        load(bad)
    first, second, third = caught.value.problems
    assert first.endswith(
        "image id=1: field 'file_name' 'a.jpg': the file is 40x60 (60x40 upright, by its EXIF orientation), "
        "fields 'width'/'height' say 50x50"
    )
    assert "'IMG_0002.HEIC': is a HEIC photograph, which training does not read: convert it" in second
    assert "'c.jpg': is not an image Pillow can read" in third


def test_a_truncated_image_is_named_when_training_reads_it(tmp_path: Path) -> None:
    """Validation reads headers only; a file whose pixels stop short fails where it is read, naming itself."""
    from training.config import TrainConfig
    from training.data import PersonCrops, persons

    photo = io.BytesIO()
    Image.open(PHOTOS / "grace_hopper_512.png").convert("RGB").save(photo, format="JPEG", quality=90)
    cut = photo.getvalue()[: len(photo.getvalue()) * 3 // 5]  # the header whole, the pixels stopping short
    flat = [float(v) for _ in range(17) for v in (200, 200, 2)]
    root = _dataset(tmp_path / "cut", [("cut.jpg", cut, 512, 512)], [flat])
    crops = PersonCrops(persons(load(root), 0), TrainConfig.from_section({"config": "cpu"}), train=False)
    with pytest.raises(ImageReadError, match=r"cut\.jpg: the image could not be read: OSError: image file is trunc"):
        crops[0]


def test_a_model_scores_phone_photos_turned_by_exif_as_it_scores_them_upright(
    tmp_path: Path, pretrained_artifact: Path
) -> None:
    """Real photographs and the original MoveNet's keypoints on them as labels: the pretrained network scores the
    copies stored turned (EXIF 6, 8 and 3) as it scores the upright ones. Read as stored, the people lie on their
    side or stand on their heads."""
    from training.config import TrainConfig
    from training.data import PersonCrops, persons
    from training.evaluate import evaluate_artifact

    reference = json.loads((PHOTOS / "reference.json").read_text())["models"]["movenet-lightning"]["keypoints"]
    upright_images, turned_images, labels = [], [], []
    for name, orientation in (("astronaut", 6), ("grace_hopper", 8), ("cameraman", 3)):
        with Image.open(PHOTOS / f"{name}_512.png") as raw:
            photo = raw.convert("RGB")
        plain = io.BytesIO()
        photo.save(plain, format="JPEG", quality=95)
        upright_images.append((f"{name}.jpg", plain.getvalue(), 512, 512))
        turned_images.append((f"{name}.jpg", _turned_jpeg(photo, orientation), 512, 512))
        labels.append([v for y, x, s in reference[name] for v in (x * 512, y * 512, 2.0 if s > 0.3 else 0.0)])
    upright_set = _dataset(tmp_path / "upright", upright_images, labels)
    turned_set = _dataset(tmp_path / "turned", turned_images, labels)
    upright_scores = evaluate_artifact(pretrained_artifact, upright_set)
    turned_scores = evaluate_artifact(pretrained_artifact, turned_set)
    assert upright_scores["oks_ap"] > 0.7, upright_scores
    assert abs(turned_scores["oks_ap"] - upright_scores["oks_ap"]) < 0.05, (turned_scores, upright_scores)
    assert abs(turned_scores["mean_px_error"] - upright_scores["mean_px_error"]) < 2.0
    # training reads them alike: the same crops, within JPEG's noise
    config = TrainConfig.from_section({"config": "movenet-lightning"})
    crops = [PersonCrops(persons(load(s), 0), config, train=False) for s in (upright_set, turned_set)]
    for i in range(3):
        assert np.abs(crops[0][i]["image"].numpy() - crops[1][i]["image"].numpy()).mean() < 0.05
