"""The review contract between serving (which picks predictions to review) and labeling.

A `ReviewItem` is one prediction queued for annotators. The `Outbox` is a durable folder queue of
them: one JSON file per item keyed by request id, written atomically; an item leaves only when the
consumer acknowledges it, so a crash on either side loses nothing. A file that is not a valid item
(truncated by a full disk, edited by hand, written by an older version) is moved to `failed/` with
a log line, and counted, so it never blocks the items behind it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from posewheel import atomic

log = logging.getLogger(__name__)
_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class PredictedKeypoint(BaseModel):
    name: str
    x: float = Field(description="pixels in the input image")
    y: float = Field(description="pixels in the input image")
    score: float = Field(ge=0.0, le=1.0)


class PredictedPose(BaseModel):
    box: tuple[float, float, float, float] = Field(description="[x, y, w, h] pixels")
    box_score: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="the person detector's score of the box; null when the client gave it, or when the detector missed "
        "a stream's person in this frame and their track carried them (with timestamp_s and tracks)",
    )
    score: float = Field(ge=0.0, le=1.0)
    keypoints: list[PredictedKeypoint]


class ReviewItem(BaseModel):
    """A prediction that deserves a person's review, with everything a task needs."""

    request_id: str
    image_sha256: str
    image_path: str = Field(description="absolute path of the image in the content-addressed store")
    width: int
    height: int
    model_version: str
    poses: list[PredictedPose]
    score: float = Field(description="task confidence: the lowest pose score (a project tab lists the lowest first)")
    reason: str = Field(description="why it was queued: 'low_confidence', 'uncertain_person' or 'random'")
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))
    source: str | None = Field(
        None,
        description="where the image came from, for `posewheel predict`: the file's path, or PATH#t=SECONDS for a "
        "video frame (a media-fragment time); None for images sent over HTTP",
    )


class Outbox:
    """A durable queue of ReviewItems: `root/pending/<request_id>.json`, acked items move to `root/done/`,
    files that are not valid items to `root/failed/`."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.pending_dir = self.root / "pending"
        self.done_dir = self.root / "done"
        self.failed_dir = self.root / "failed"
        self.quarantined = 0  # files this instance moved to failed/

    def _path(self, folder: Path, key: str) -> Path:
        if not _KEY_RE.match(key):
            raise ValueError(f"outbox key {key[:80]!r} must match {_KEY_RE.pattern}")
        return folder / f"{key}.json"

    def put(self, item: ReviewItem) -> bool:
        """Queue `item` durably; False (and nothing written) if its request id was seen before."""
        path = self._path(self.pending_dir, item.request_id)
        if path.exists() or self._path(self.done_dir, item.request_id).exists():
            return False
        atomic.write_text(path, item.model_dump_json() + "\n")
        return True

    def pending(self, limit: int | None = None) -> list[ReviewItem]:
        """Items not yet acknowledged, oldest first (by creation time, then request id)."""
        items: list[ReviewItem] = []
        for path in self._pending_paths():
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # acked by another worker meanwhile
                continue
            except OSError as exc:  # a folder named *.json, no permission: never readable as an item
                self._quarantine(path, f"unreadable: {exc}")
                continue
            try:
                item = ReviewItem.model_validate_json(data)
                if path.stem != item.request_id:
                    raise ValueError(f"its request_id {item.request_id[:80]!r} is not its file name")
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                self._quarantine(path, f"not a valid review item: {str(exc)[:300]}")
                continue
            items.append(item)
        items.sort(key=lambda i: (i.created, i.request_id))
        return items[:limit] if limit is not None else items

    def _quarantine(self, path: Path, why: str) -> None:
        """Move a pending file that can never be delivered to `failed/` (logged, counted); the rest go on."""
        self.failed_dir.mkdir(parents=True, exist_ok=True)
        target = self.failed_dir / path.name
        if target.exists():
            target = self.failed_dir / f"{path.stem}.{os.urandom(4).hex()}{path.suffix}"
        try:
            os.replace(path, target)
        except FileNotFoundError:
            return  # acked or quarantined by another worker meanwhile
        except OSError as exc:
            log.error("outbox file %s %s, and it could not be moved to %s: %s", path, why, self.failed_dir, exc)
            return
        self.quarantined += 1
        log.error("outbox file %s %s; moved to %s", path.name, why, target)

    def failed(self) -> int:
        """Files moved to `failed/` (by any worker, ever): each needs a person's look."""
        return sum(1 for _ in self.failed_dir.iterdir()) if self.failed_dir.is_dir() else 0

    def _pending_paths(self) -> Iterator[Path]:
        if self.pending_dir.is_dir():
            yield from (p for p in self.pending_dir.iterdir() if p.suffix == ".json" and not p.name.startswith("."))

    def depth(self) -> int:
        return sum(1 for _ in self._pending_paths())

    def ack(self, request_id: str) -> None:
        """Mark an item delivered (moves it to `done/`); acking twice is harmless."""
        src = self._path(self.pending_dir, request_id)
        dst = self._path(self.done_dir, request_id)
        dst.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(src, dst)

    def delivered(self) -> int:
        return sum(1 for p in self.done_dir.glob("*.json")) if self.done_dir.is_dir() else 0


class ReviewDrainer(Protocol):
    """What the server needs of whatever carries review items from the outbox to a labeling tool.

    Label Studio's is `labeling.queue.OutboxDrainer`; another tool plugs in by offering these three.
    """

    def wake(self) -> None:
        """A new item is in the outbox: deliver soon."""

    def set_model_version(self, version: str) -> None:
        """The served model changed: new pre-annotations carry this version."""

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop delivering; what is left stays in the outbox."""
