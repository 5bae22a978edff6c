"""Core data commands: `synth` (generate a synthetic dataset) and `show` (look at a dataset).

posewheel synth --domain studio --count 500 --seed 0 --out data/seed
posewheel synth --domain street --count 300 --seed 1 --out data/holdout/street --workers 2
posewheel synth --domain street --count 300 --seed 4 --out data/street_groups --persons 0-4
posewheel show data/seed --out grid.png --count 16
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from posewheel.cli import fail


def parse_persons(text: str) -> tuple[int, int]:
    """'LO-HI' (e.g. '0-4') or 'N' (exactly N) as (lo, hi) persons per image; ValueError if malformed."""
    lo, sep, hi = text.strip().partition("-")
    try:
        span = (int(lo), int(hi) if sep else int(lo))
    except ValueError:
        raise ValueError(f"--persons {text!r}: expected LO-HI such as 0-4, or one number") from None
    from posewheel.synth.group import check_persons

    return check_persons(span)


class DomainName(StrEnum):
    """The synthetic domains."""

    studio = "studio"
    street = "street"


def synth(
    domain: Annotated[
        DomainName,
        typer.Option(
            help="studio: plain backdrops, upright poses; street: clutter, occluders, blur, noise, wide poses"
        ),
    ],
    count: Annotated[int, typer.Option(min=1, max=1_000_000, help="number of images")],
    out: Annotated[Path, typer.Option(help="dataset folder to write (replaced atomically)")],
    seed: Annotated[int, typer.Option(min=0, help="random seed; same arguments give identical bytes")] = 0,
    size: Annotated[int, typer.Option(min=32, max=4096, help="image width = height in pixels")] = 256,
    truth_dir: Annotated[
        Path | None,
        typer.Option(help="where ground truth goes, keyed by image SHA-256 [default: the project's var/truth]"),
    ] = None,
    no_truth: Annotated[bool, typer.Option("--no-truth", help="do not write ground truth")] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="processes rendering in parallel")] = 1,
    persons: Annotated[
        str | None,
        typer.Option(
            metavar="LO-HI",
            help="several persons per image, LO to HI (e.g. 0-4: empty images too, overlapping people at "
            "different scales) [default: one person per image]",
        ),
    ] = None,
) -> None:
    """Generate a synthetic COCO keypoint dataset: articulated people with true visibility."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from posewheel.settings import ProjectSettings
    from posewheel.synth import generate

    if out.exists() and not out.is_dir():
        raise fail(f"--out {out} is a file; give a folder for the dataset")
    if out.is_dir() and any(out.iterdir()) and not (out / "annotations.json").is_file():
        raise fail(f"--out {out} is a non-empty folder that is not a dataset; refusing to replace it")
    try:
        span = None if persons is None else parse_persons(persons)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    truth = None if no_truth else (truth_dir or ProjectSettings().truth_dir)
    columns = (TextColumn(f"synth {domain.value}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, transient=True, disable=count < 200) as bar:
            task = bar.add_task("synth", total=count)
            dataset = generate(
                domain.value,
                count,
                seed,
                out,
                size=size,
                truth_dir=truth,
                workers=workers,
                progress=lambda done: bar.update(task, completed=done),
                persons=span,
            )
    except OSError as exc:
        raise fail(f"cannot write the dataset to {out} or the truth to {truth}: {exc}") from exc
    visible = sum(int((a.keypoints[:, 2] == 2).sum()) for a in dataset.annotations)
    occluded = sum(int((a.keypoints[:, 2] == 1).sum()) for a in dataset.annotations)
    people = ""
    if span is not None:
        empty = len(dataset.images) - len({a.image_id for a in dataset.annotations})
        people = f"{len(dataset.annotations)} persons ({span[0]}-{span[1]} per image, {empty} images empty), "
    typer.echo(
        f"{out}: {len(dataset.images)} {domain.value} images ({size}x{size}), {people}"
        f"{visible} visible and {occluded} occluded joints; truth: {truth or 'not written'}"
    )


def show(
    folder: Annotated[Path, typer.Argument(help="dataset folder (annotations.json + images/)")],
    out: Annotated[Path, typer.Option(help="PNG file to write the grid to")] = Path("grid.png"),
    count: Annotated[int, typer.Option(min=1, max=400, help="number of images in the grid")] = 16,
    start: Annotated[int, typer.Option(min=0, help="index of the first image shown (in id order)")] = 0,
    columns: Annotated[int, typer.Option(min=1, max=40, help="images per row")] = 4,
    cell: Annotated[int, typer.Option(min=32, max=1024, help="size of one grid cell in pixels")] = 256,
) -> None:
    """Draw a grid of a dataset's images with their skeletons (filled = visible, hollow = occluded)."""
    import numpy as np

    from posewheel.dataset import DatasetError, load
    from posewheel.draw import draw_poses, image_grid
    from posewheel.imagestore import read_rgb

    if out.suffix.lower() != ".png":
        raise fail(f"--out {out} must end in .png")
    try:
        dataset = load(folder)
    except DatasetError as exc:
        raise fail(f"{folder} is not a valid dataset: {exc.problems[0]}") from exc
    chosen = sorted(dataset.images, key=lambda r: r.id)[start : start + count]
    if not chosen:
        raise fail(f"{folder} has {len(dataset.images)} images; --start {start} leaves none to show")
    by_image = dataset.annotations_by_image()
    tiles = []
    for record in chosen:
        img = read_rgb(dataset.image_path(record), (record.width, record.height))
        scale = cell / max(img.size)
        tile = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
        persons = by_image.get(record.id, [])
        if persons:
            kps = np.stack([p.keypoints for p in persons]).copy()
            kps[..., :2] *= scale
            boxes = np.array([p.bbox for p in persons]) * scale
            tile = draw_poses(tile, kps, boxes=boxes)
        tiles.append(tile)
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(tiles, min(columns, len(tiles)), cell).save(out)
    typer.echo(f"{out}: {len(tiles)} images from {folder}")


def register(app: typer.Typer) -> None:
    """Add the synthetic-data commands."""
    app.command()(synth)
    app.command()(show)
