"""Where the pipeline's folders are, and how `dvc repro` is run.

`dvc.yaml` is the map of the pipeline; this module only names the paths it declares, so that the
stages, the demo and `posewheel flywheel status` agree on them. Parameters are read by
`posewheel.params.load_params` (re-exported here for the stages).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from posewheel.params import load_params
from posewheel.settings import ProjectSettings

__all__ = [
    "AGREEMENT",
    "ONE_PERSON_AGREEMENT",
    "REAL_PHOTOS",
    "SCENES_HOLDOUT",
    "SMALL_PEOPLE_AGREEMENT",
    "SMALL_PEOPLE_SERVED_AGREEMENT",
    "PipelineBusyError",
    "PipelinePaths",
    "dvc_command",
    "load_params",
    "pipeline_lock",
    "repro",
    "running_pipeline",
    "venv_environ",
]


SCENES_HOLDOUT = "street_scenes"  # its metrics file and the key of its metrics in cards and promotion.json
# the same for the candidate's agreement with the pretrained MoveNet on real photographs (training/realphotos.py)
REAL_PHOTOS = "real_photos"
AGREEMENT = "agreement@0.05"  # its headline figure (training/realphotos.agreement's key)
SMALL_PEOPLE_AGREEMENT = "small_people_agreement@0.05"  # the same people pasted smaller (small_people_agreement)
ONE_PERSON_AGREEMENT = "one_person_agreement@0.05"  # the headline figure over the photographs of one person only
# the small people as served: the detector's crop of each, not the whole picture (served_small_people_agreement)
SMALL_PEOPLE_SERVED_AGREEMENT = "small_people_served_agreement@0.05"


@dataclass(frozen=True)
class PipelinePaths:
    """The folders `dvc.yaml` declares, under the project root."""

    root: Path

    @classmethod
    def from_settings(cls, settings: ProjectSettings | None = None) -> PipelinePaths:
        return cls((settings or ProjectSettings()).root)

    @property
    def seed(self) -> Path:
        return self.root / "data" / "seed"

    @property
    def seed_scenes(self) -> Path:
        """Studio scenes of several people (some of nobody): the person detector's seed set."""
        return self.root / "data" / "seed_scenes"

    @property
    def holdout_studio(self) -> Path:
        return self.root / "data" / "holdout" / "studio"

    @property
    def holdout_street(self) -> Path:
        return self.root / "data" / "holdout" / "street"

    @property
    def holdout_scenes(self) -> Path:
        """Street scenes of several people (some of nobody), scored as served without boxes: the detector
        finds the people (`scenes_holdout`); informative, not part of the promotion rule."""
        return self.root / "data" / "holdout" / SCENES_HOLDOUT

    @property
    def feedback(self) -> Path:
        return self.root / "data" / "feedback"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def candidate(self) -> Path:
        return self.models / "candidate"

    @property
    def production(self) -> Path:
        """The production model: a symlink to `models/<version>` after a promotion, the same files as a
        plain folder after `dvc pull` / `dvc checkout` (DVC stores an output's contents, not links)."""
        return self.models / "production"

    @property
    def candidate_metrics(self) -> Path:
        return self.root / "metrics" / "candidate"

    @property
    def promotion(self) -> Path:
        return self.root / "metrics" / "promotion.json"

    @property
    def history(self) -> Path:
        return self.root / "metrics" / "history.csv"

    @property
    def lock(self) -> Path:
        """Held while a pipeline run (`posewheel flywheel repro` or `watch`) is under way."""
        return self.root / "var" / "flywheel.lock"

    @property
    def watch_log(self) -> Path:
        """One line per `posewheel flywheel watch` poll."""
        return self.root / "var" / "log" / "flywheel-watch.log"

    def holdouts(self) -> dict[str, Path]:
        return {"studio": self.holdout_studio, "street": self.holdout_street}


class PipelineBusyError(RuntimeError):
    """Another pipeline run holds the lock; the message says which process and since when."""


@contextlib.contextmanager
def pipeline_lock(paths: PipelinePaths) -> Iterator[None]:
    """Hold `var/flywheel.lock` for one pipeline run; raise PipelineBusyError at once when another run holds it.

    An advisory `flock`: the kernel drops it when the holder exits, killed or not, so no stale lock
    outlives a crash. The holder's pid and start time are written into the file for the message.
    """
    paths.lock.parent.mkdir(parents=True, exist_ok=True)
    with open(paths.lock, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise PipelineBusyError(f"a pipeline run is already under way ({holder}; lock {paths.lock})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {datetime.now(UTC).isoformat(timespec='seconds')}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()


def dvc_command(*args: str) -> list[str]:
    """The `dvc` of this interpreter's environment (works whether or not the venv is activated)."""
    candidate = Path(sys.executable).with_name("dvc")
    return [str(candidate) if candidate.exists() else (shutil.which("dvc") or "dvc"), *args]


def venv_environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment with this interpreter's bin folder first on PATH, so DVC stage commands
    (`python -m ...`, `posewheel ...`) run in the project's virtualenv even when it is not activated."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def running_pipeline(paths: PipelinePaths) -> str | None:
    """Who holds the pipeline lock ("pid N since T"), or None when no run is under way.

    Reads what the holder wrote instead of trying the lock, so asking never makes a starting run
    find the lock taken. A holder killed with SIGKILL leaves its line behind: its pid is checked.
    """
    try:
        holder = paths.lock.read_text(encoding="utf-8").strip()
        pid = int(holder.split()[1])
        os.kill(pid, 0)
    except (OSError, IndexError, ValueError):  # no file, an empty one (released), or a dead holder
        return None
    return holder


def repro(root: Path, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `dvc repro` in `root` with the project's virtualenv on PATH; output streams to the terminal."""
    return subprocess.run(dvc_command("repro", *args), cwd=root, env=venv_environ(extra_env), text=True, check=False)
