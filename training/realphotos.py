"""Real-photo agreement: how close a model stays to the pretrained MoveNet on real people.

    from training.realphotos import agreement, errors_by_photo, overlay_grid, small_people_agreement
    agreement(Path("models/production"))        # {"agreement@0.05": 0.97, "median_error": 0.01, "keypoints": 69.0,
                                                #  "one_person_agreement@0.05": 1.0, ...: the photographs of one}
    errors_by_photo(Path("models/production"))  # {"astronaut": array of its confident keypoints' errors, ...}
    small_people_agreement(Path("models/production"))  # {"small_people_agreement@0.05": 0.93, ...}

The check set (tests/fixtures/real_photos, see its README) holds public-domain photographs of real
people and the keypoints the original MoveNet graph answered on them. No human labels exist for
them here, so this measures agreement with the pretrained network, not accuracy: a model fine-tuned
on synthetic figures that drifts from it has forgotten something about real people. A keypoint
agrees when it lies within 5% of the input side of the reference; only reference keypoints the
original scored above 0.3 count.

The check set's people fill their photograph. `small_people_agreement` asks the same question of the
three single people pasted at about half the picture's side into five places (four sides and the
middle) of two people-free photographs: 30 pictures, referenced by the original graph too
(`reference_small_people.json`). A fine-tune on crops that a person always fills can keep the first
figure and lose this one.

Both read the whole picture as one person's box, as MoveNet was trained and as a model without a person
detector serves it. A model with one serves a picture differently: its detector finds the person and the pose
network reads the person's own crop. `training.evaluate_persons.served_small_people_agreement` reads the 30
pictures (at 512 px, as a user would send them) that way, each found person against the same original answers:
what the product answers, where the whole-picture figure asks how the network copes with a person in a loose
frame (docs/real-photos.md, session 50: a turn's fine-tune at the defaults loses 0.04-0.06 of the whole-picture
figure and at most about 0.01 of the served one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from posewheel.artifact import MODEL_FILE, load_card
from posewheel.decoding import crop_box, crop_image, decode_outputs, normalize, whole_image_box

CHECK_SET = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "real_photos"
REFERENCE_MODEL = "movenet-lightning"
CONFIDENT = 0.3
TOLERANCE = 0.05  # of the input side


SMALL_PEOPLE_REFERENCE = "reference_small_people.json"
SMALL_SIDE = 282  # px of the 512 background a pasted person's photograph takes (55%)
SMALL_PLACES = {"left": (0, 115), "right": (230, 115), "top": (115, 0), "bottom": (115, 230), "middle": (115, 115)}
SERVED_SIDE = 512  # the small-people pictures as a user sends them, for the served reading (evaluate_persons)
SMALL_BACKGROUNDS = ("nobody_coffee", "nobody_rocket")
SINGLE_PEOPLE = ("astronaut", "cameraman", "grace_hopper")


def reference(check_set: Path = CHECK_SET) -> dict[str, Any]:
    """The original MoveNet's answers on the check set: {"input_size": S, "keypoints": {name: 17 x [y, x, score]}}."""
    recorded: dict[str, Any] = json.loads((check_set / "reference.json").read_text(encoding="utf-8"))
    return dict(recorded["models"][REFERENCE_MODEL])


def people(check_set: Path = CHECK_SET) -> list[str]:
    """Names of the check-set photographs with a person in them."""
    return [n for n in reference(check_set)["keypoints"] if not n.startswith("nobody")]


def predict_photos(artifact: Path, check_set: Path = CHECK_SET) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The artifact's keypoints (17, 2) in photo pixels and scores (17,) per check-set photo, no boxes given."""
    size = reference(check_set)["input_size"]
    pictures = {}
    for name in people(check_set):
        with Image.open(check_set / f"{name}_{size}.png") as raw:
            pictures[name] = raw.convert("RGB")
    return answer_pictures(artifact, pictures)


def answer_pictures(artifact: Path, pictures: dict[str, Image.Image]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The artifact's keypoints (17, 2) in picture pixels and scores (17,) per picture, the whole picture its box."""
    import onnxruntime as ort

    card = load_card(artifact)
    spec = card.input_spec()
    session = ort.InferenceSession(str(Path(artifact) / MODEL_FILE), providers=["CPUExecutionProvider"])
    names = card.output.names
    out = {}
    for name, image in pictures.items():
        window = crop_box(whole_image_box(image.width, image.height, spec), spec)
        batch = normalize(crop_image(image, window, spec)[None], spec)
        maps = dict(zip(names, session.run(names, {card.input.input_name: batch}), strict=True))
        points, scores = decode_outputs(maps, [window], spec, card.output.kind)
        out[name] = (points[0], scores[0])
    return out


def confident(name: str, check_set: Path = CHECK_SET) -> np.ndarray:
    """Which of the 17 keypoints the original scored above CONFIDENT on photo `name` (the ones that count)."""
    return np.asarray(reference(check_set)["keypoints"][name])[:, 2] > CONFIDENT


def errors_by_photo(artifact: Path, check_set: Path = CHECK_SET) -> dict[str, np.ndarray]:
    """Per check-set photo, the distance of each of the original's confident keypoints (fraction of the input side)."""
    recorded = reference(check_set)
    return _errors(predict_photos(artifact, check_set), recorded["keypoints"], recorded["input_size"])


def small_people(check_set: Path = CHECK_SET, side: int | None = None) -> dict[str, Image.Image]:
    """The 30 small-people pictures at the reference model's input size: "PERSON@BACKGROUND:PLACE" -> RGB image.

    Each single person's 512 px check-set photograph, resized to SMALL_SIDE, pasted at its SMALL_PLACES corner
    in a 512 px people-free photograph, then resized to the input side (Pillow, bilinear): the exact model
    input, as the check set's own NAME_SIZE.png files are. `side`: resized to that side instead (512: as pasted).
    """
    size = reference(check_set)["input_size"] if side is None else side
    out = {}
    for background in SMALL_BACKGROUNDS:
        with Image.open(check_set / f"{background}_512.png") as raw:
            back = raw.convert("RGB")
        for person in SINGLE_PEOPLE:
            with Image.open(check_set / f"{person}_512.png") as raw:
                pasted = raw.convert("RGB").resize((SMALL_SIDE, SMALL_SIDE), Image.Resampling.BILINEAR)
            for place, corner in SMALL_PLACES.items():
                picture = back.copy()
                picture.paste(pasted, corner)
                out[f"{person}@{background}:{place}"] = picture.resize((size, size), Image.Resampling.BILINEAR)
    return out


def small_people_errors(artifact: Path, check_set: Path = CHECK_SET) -> dict[str, np.ndarray]:
    """Per small-people picture, the distance of each of the original's confident keypoints (fraction of the side)."""
    recorded = json.loads((check_set / SMALL_PEOPLE_REFERENCE).read_text(encoding="utf-8"))
    return _errors(answer_pictures(artifact, small_people(check_set)), recorded["keypoints"], recorded["input_size"])


def _errors(
    answers: dict[str, tuple[np.ndarray, np.ndarray]], recorded: dict[str, Any], size: int
) -> dict[str, np.ndarray]:
    """Per picture, how far each of the original's confident keypoints (recorded: 17 x [y, x, score], normalised)
    lies from the answer's (17, 2) input pixels, as a fraction of the input side `size`."""
    errors = {}
    for name, (points, _) in answers.items():
        kps = np.asarray(recorded[name])
        errors[name] = np.linalg.norm(points - kps[:, [1, 0]] * size, axis=1)[kps[:, 2] > CONFIDENT] / size
    return errors


def small_people_agreement(artifact: Path, check_set: Path = CHECK_SET) -> dict[str, float]:
    """`agreement` on the small-people pictures: {"small_people_agreement@0.05", ..._median_error, ..._keypoints}."""
    figures = summarize(np.concatenate(list(small_people_errors(artifact, check_set).values())))
    return {f"small_people_{k}": v for k, v in figures.items()}


def summarize(errors: np.ndarray) -> dict[str, float]:
    """Agreement (share within 5% of the input side), median error and count of some keypoint errors."""
    return {
        "agreement@0.05": float((errors < TOLERANCE).mean()),
        "median_error": float(np.median(errors)),  # fraction of the input side
        "keypoints": float(len(errors)),
    }


def agreement(artifact: Path, check_set: Path = CHECK_SET) -> dict[str, float]:
    """Share of the original's confident keypoints within 5% of the input side of the reference; median error;
    and the same over the photographs of one person (`one_person_` keys). The check set's one photograph of two,
    ascent, counts only in the first: without a box a model answers one of its climbers, and which one is close
    to a coin toss for the original itself (docs/real-photos.md), so the second is the figure that moves only
    when a model drifts on a person."""
    errors = errors_by_photo(artifact, check_set)
    figures = summarize(np.concatenate(list(errors.values())))
    one_person = [e for name, e in errors.items() if name.removesuffix("_mirrored") in SINGLE_PEOPLE]
    if one_person:  # a check set of its own may have none
        figures |= {f"one_person_{k}": v for k, v in summarize(np.concatenate(one_person)).items()}
    return figures


def drawn_answer(photo: str, points: np.ndarray, scores: np.ndarray, check_set: Path = CHECK_SET) -> Image.Image:
    """Check-set photo `photo` at twice the input side, with the keypoints (17, 2) scored above CONFIDENT drawn."""
    from posewheel.draw import draw_poses

    size = reference(check_set)["input_size"]
    image = Image.open(check_set / f"{photo}_{size}.png").convert("RGB").resize((2 * size, 2 * size))
    return draw_poses(image, points * 2, scores, threshold=CONFIDENT)


def overlay_grid(artifact: Path, out: Path, check_set: Path = CHECK_SET) -> Path:
    """Draw the artifact's answers on every check-set photo (a 3-column grid PNG at `out`); returns `out`."""
    from posewheel.draw import image_grid

    answers = predict_photos(artifact, check_set)
    tiles = [drawn_answer(name, points, scores, check_set) for name, (points, scores) in answers.items()]
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(tiles, columns=3, cell=tiles[0].width).save(out)
    return out
