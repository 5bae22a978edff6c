"""Retention: how long the images the server keeps stay, and a cleanup within an age or size budget.

    posewheel gc --max-age-days 30                     # images not kept for a reason, older than 30 days
    posewheel gc --max-age-days 30 --max-gib 20        # and then the oldest of them until the store fits
    posewheel gc --max-age-days 30 --done-max-age-days 90 --dry-run

The server stores every request's image in the content-addressed store (`var/images`) and keeps a
record of every review item delivered to Label Studio (`var/outbox/done/`). An image is *kept for
a reason*, whatever its age, while a review item in `pending/` or `done/` names it (Label Studio
shows it to annotators, and each export reads it from the store) or a dataset named with `--keep`
(default `data/feedback`) holds it; every other image (predictions nobody reviews: the bulk) is
removed once older than the age, then the oldest of them until the store fits the size budget.
Delivered records older than `--done-max-age-days` are removed first, releasing their images to
the same rules: choose it longer than your labeling backlog, or those tasks lose their picture.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

log = logging.getLogger(__name__)
_SHA_LEN = 64


@dataclass
class GcReport:
    """What a collection removed (or would remove, in a dry run) and what it kept for a reason."""

    images_removed: int = 0
    bytes_removed: int = 0
    done_removed: int = 0
    images_kept_for_a_reason: int = 0
    store_bytes_after: int = 0
    over_budget: bool = False
    removed: list[str] = field(default_factory=list)


def _referenced_by_outbox(
    outbox_dir: Path, done_max_age_s: float | None, now: float, dry_run: bool, report: GcReport
) -> set[str]:
    """Hashes named by review items in pending/ and done/; done/ records past their age are removed."""
    shas: set[str] = set()
    for folder in ("pending", "done"):
        for path in sorted((outbox_dir / folder).glob("*.json")) if (outbox_dir / folder).is_dir() else []:
            try:
                if folder == "done" and done_max_age_s is not None and now - path.stat().st_mtime > done_max_age_s:
                    report.done_removed += 1
                    if not dry_run:
                        path.unlink()
                    continue
                sha = json.loads(path.read_bytes()).get("image_sha256")
            except (OSError, ValueError, AttributeError) as exc:  # gone meanwhile, or not an item: no claim
                log.warning("outbox file %s not read: %s", path, exc)
                continue
            if isinstance(sha, str):
                shas.add(sha)
    return shas


def _referenced_by_datasets(datasets: Iterable[Path]) -> set[str]:
    """Hashes of the images of COCO datasets (their `image_sha256`, else a file name that is a hash)."""
    shas: set[str] = set()
    for root in datasets:
        path = Path(root) / "annotations.json"
        if not path.is_file():
            continue
        for image in json.loads(path.read_text(encoding="utf-8")).get("images", []):
            sha = image.get("image_sha256") or Path(str(image.get("file_name", ""))).stem
            if isinstance(sha, str) and len(sha) == _SHA_LEN:
                shas.add(sha)
    return shas


def collect(
    image_store_dir: Path,
    outbox_dir: Path,
    max_age_s: float,
    max_bytes: int | None = None,
    keep_datasets: Iterable[Path] = (),
    done_max_age_s: float | None = None,
    dry_run: bool = False,
    now: float | None = None,
) -> GcReport:
    """Remove stored images no review item or kept dataset names: older than `max_age_s`, then the
    oldest until the store holds at most `max_bytes`. Ages are file modification times, seconds."""
    if max_age_s < 0 or (max_bytes is not None and max_bytes < 0):
        raise ValueError(f"max_age_s and max_bytes must not be negative, got {max_age_s} and {max_bytes}")
    now = time.time() if now is None else now
    report = GcReport()
    kept = _referenced_by_outbox(outbox_dir, done_max_age_s, now, dry_run, report)
    kept |= _referenced_by_datasets(keep_datasets)
    candidates: list[tuple[float, int, Path]] = []  # (mtime, size, path) of images without a reason to stay
    total = 0
    for path in image_store_dir.glob("??/*") if image_store_dir.is_dir() else []:
        if len(path.name) != _SHA_LEN or not path.is_file():
            continue  # temporary files of a write in progress, anything not ours
        st = path.stat()
        total += st.st_size
        if path.name in kept:
            report.images_kept_for_a_reason += 1
        else:
            candidates.append((st.st_mtime, st.st_size, path))
    candidates.sort()  # oldest first
    for mtime, size, path in candidates:
        too_old = now - mtime > max_age_s
        over = max_bytes is not None and total > max_bytes
        if not (too_old or over):
            continue
        if not dry_run:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
        total -= size
        report.images_removed += 1
        report.bytes_removed += size
        report.removed.append(path.name)
    report.store_bytes_after = total
    report.over_budget = max_bytes is not None and total > max_bytes
    return report


def gc(
    max_age_days: Annotated[float, typer.Option(help="remove images older than this that nothing keeps, days")],
    max_gib: Annotated[
        float | None, typer.Option(help="then remove the oldest such images until the store fits, GiB")
    ] = None,
    done_max_age_days: Annotated[
        float | None, typer.Option(help="first remove delivered review records older than this, days (default: keep)")
    ] = None,
    keep: Annotated[
        list[Path] | None, typer.Option(help="a dataset whose images stay (repeatable; default data/feedback)")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="only report what would be removed")] = False,
) -> None:
    """Clean the image store (and optionally old delivered review records) within an age or size budget."""
    from posewheel.cli import fail
    from posewheel.settings import ProjectSettings

    settings = ProjectSettings()
    datasets = keep if keep else [settings.data_dir / "feedback"]
    try:
        report = collect(
            settings.image_store_dir,
            settings.outbox_dir,
            max_age_s=max_age_days * 86400.0,
            max_bytes=None if max_gib is None else int(max_gib * 2**30),
            keep_datasets=datasets,
            done_max_age_s=None if done_max_age_days is None else done_max_age_days * 86400.0,
            dry_run=dry_run,
        )
    except (OSError, ValueError) as exc:
        raise fail(f"gc: {exc}", code=1) from exc
    verb = "would remove" if dry_run else "removed"
    typer.echo(
        f"{verb} {report.images_removed} image(s), {report.bytes_removed / 2**20:.1f} MiB, and "
        f"{report.done_removed} delivered review record(s); kept {report.images_kept_for_a_reason} image(s) "
        f"that review items or datasets name; store now {report.store_bytes_after / 2**20:.1f} MiB"
    )
    if report.over_budget:
        raise fail(f"gc: the store is still over {max_gib} GiB: what is left is kept for a reason", code=1)


def register(app: typer.Typer) -> None:
    """Add `posewheel gc` to the CLI."""
    app.command("gc")(gc)
