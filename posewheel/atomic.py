"""Atomic writes of files, folders and pointers: an interrupted write leaves the old state or the new.

Files are written to a temporary sibling, fsynced and renamed over the target. Folders are built
beside the target, every file and folder in them fsynced, and swapped in with one
`renameat2(RENAME_EXCHANGE)` call where the kernel has it (Linux), so readers see the old folder
or the new one, never a mix and never nothing, and a power cut after the swap cannot leave the
new folder's names pointing at empty files (files copied or written into a stage by any means,
`shutil.copy2` or `Path.write_text`, are made durable here, before the swap).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str | os.PathLike[str]) -> None:
    """fsync every regular file under `root`, then every folder (deepest first), `root` included."""
    folders: list[str] = []
    for folder, _dirs, files in os.walk(root):
        folders.append(folder)
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for folder in reversed(folders):
        _fsync_dir(Path(folder))


def write_bytes(path: str | os.PathLike[str], data: bytes, mode: int | None = None) -> None:
    """Write `data` to `path` atomically (temporary sibling, fsync, rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def write_text(path: str | os.PathLike[str], text: str, mode: int | None = None) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    write_bytes(path, text.encode("utf-8"), mode=mode)


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    """Write `obj` as JSON atomically, keys in insertion order, with a final newline."""
    write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with renameat2(RENAME_EXCHANGE); False if unsupported."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc != 0:
        errno = ctypes.get_errno()
        if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: filesystem cannot exchange
            return False
        raise OSError(errno, os.strerror(errno), str(a))
    return True


def replace_dir(staged: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Put the finished folder `staged` at `target`, replacing any old one in one atomic step."""
    staged_path, target_path = Path(staged), Path(target)
    if not target_path.exists():
        os.replace(staged_path, target_path)
    elif _exchange(staged_path, target_path):
        shutil.rmtree(staged_path)  # now holds the old contents
    else:  # pragma: no cover - non-Linux fallback: a short window without the folder
        old = target_path.with_name(f".{target_path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target_path, old)
        os.replace(staged_path, target_path)
        shutil.rmtree(old)
    _fsync_dir(target_path.parent)


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty folder beside `target`; on success it replaces `target` atomically.

    On an exception (or a kill) the old `target` is untouched; the stage is removed when possible,
    and a stage left by a killed writer is removed by the next one. One writer per target at a time.
    """
    target_path = Path(target)
    target_path.parent.mkdir(parents=True, exist_ok=True)
    # A writer killed mid-way (SIGKILL) leaves its stage behind; one writer per target at a time
    # (DVC's output lock, or the caller's own), so any stage found now is such a leftover.
    for leftover in target_path.parent.glob(f".{target_path.name}.stage-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    stage = Path(tempfile.mkdtemp(dir=target_path.parent, prefix=f".{target_path.name}.stage-"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        yield stage
        fsync_tree(stage)  # the contents are on disk before the name points at them
        replace_dir(stage, target_path)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def point_symlink(link: str | os.PathLike[str], destination: str) -> None:
    """Make `link` a symlink to `destination` (relative is kept as given), atomically."""
    link_path = Path(link)
    tmp = link_path.with_name(f".{link_path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(destination, tmp)
    os.replace(tmp, link_path)
    _fsync_dir(link_path.parent)
