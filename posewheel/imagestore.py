"""Content-addressed image store: each image's bytes saved once under its SHA-256.

No client-controlled name ever reaches the file system: the only key is the hash we compute.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from posewheel import atomic

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def content_hash(data: bytes) -> str:
    """SHA-256 hex digest of the image bytes: the image's identity everywhere in the project."""
    return hashlib.sha256(data).hexdigest()


class ImageStore:
    """Images under `root/<sha[:2]>/<sha>`; writes are atomic, a second put of the same bytes is free."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def path_for(self, sha256: str) -> Path:
        if not _SHA_RE.match(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256[:80]!r}")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store `data` (once) and return its hash."""
        sha = content_hash(data)
        path = self.path_for(sha)
        if not path.exists():
            atomic.write_bytes(path, data)
        return sha

    def get(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def __contains__(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()
