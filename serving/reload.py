"""Hot reload: notice a new production model, load it beside the old one, smoke-test it, swap it in.

The model is found through `model_dir` (usually the `models/production` symlink). Its
fingerprint is the symlink's resolved target plus the size and modification time of
`card.json` and `model.onnx`; a poll every `reload_poll_s` seconds (or `POST /v1/admin/reload`)
compares it with the served model's. The swap is one reference assignment: requests already
holding the old model finish on it, the next ones get the new one. A broken artifact is refused
(log line and counter), remembered so it is not retried until it changes, and the old model
keeps serving. Any error counts as broken, not only ModelLoadError (a card that is a folder, a
file system error, a bug in a decoder): the watcher logs it and keeps polling, so hot reload
never stops for good and shutdown never meets a dead watcher's exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from posewheel.artifact import CARD_FILE, MODEL_FILE
from posewheel.detection import FindOptions
from serving.engine import ModelLoadError, ServedModel, load_model
from serving.prometheus import ServingMetrics

log = logging.getLogger(__name__)


def fingerprint(model_dir: Path) -> str:
    """Identity of what `model_dir` points at now: resolved folder + card/model size and mtime (ns)."""
    try:
        target = model_dir.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop: nothing loadable there, but still an identity
        return f"{model_dir}|unresolvable:{exc}"
    parts = [str(target)]
    for name in (CARD_FILE, MODEL_FILE):
        try:
            st = (target / name).stat()
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{name}:missing")
    return "|".join(parts)


class ModelHolder:
    """The served model and the one way to replace it."""

    def __init__(
        self,
        model_dir: Path,
        threads: int,
        execution_provider: str,
        metrics: ServingMetrics,
        on_swap: Callable[[ServedModel], None] | None = None,
        find_options: FindOptions | None = None,
    ) -> None:
        self.model_dir = model_dir
        self.find_options = find_options or FindOptions()
        self.threads = threads
        self.execution_provider = execution_provider
        self.metrics = metrics
        self.on_swap = on_swap
        self.current: ServedModel | None = None
        self.last_error: str | None = None
        self._refused: str | None = None  # fingerprint of the last refused artifact
        self._lock = asyncio.Lock()

    async def reload(self, force: bool = False) -> ServedModel:
        """Load the model `model_dir` points at if it changed (or `force`); return the served model.

        Raises ModelLoadError (after counting and logging it) when the new artifact is refused;
        the previous model, if any, stays in service.
        """
        async with self._lock:
            fp = fingerprint(self.model_dir)
            current = self.current
            if current is not None and not force and fp == current.fingerprint:
                return current
            if not force and fp == self._refused:
                raise ModelLoadError(self.last_error or f"{self.model_dir}: refused before")
            try:
                model = await asyncio.to_thread(
                    load_model, self.model_dir.resolve(), fp, self.threads, self.execution_provider, self.find_options
                )
            except Exception as exc:  # whatever broke, this artifact is refused, not the server
                error = (
                    exc
                    if isinstance(exc, ModelLoadError)
                    else ModelLoadError(f"{self.model_dir}: {type(exc).__name__}: {exc}")
                )
                self._refused, self.last_error = fp, str(error)
                self.metrics.reload_failures.inc()
                served = current.version if current is not None else "none"
                log.error("model refused, still serving %s: %s", served, error)
                if error is exc:
                    raise
                raise error from exc
            self.current, self._refused, self.last_error = model, None, None
            self.metrics.reloads.inc()
            self.metrics.set_model(model.version)
            old = current.version if current is not None else "none"
            log.info("serving model %s (was %s) from %s", model.version, old, model.folder)
            if self.on_swap is not None:
                self.on_swap(model)
            return model

    async def watch(self, poll_s: float) -> None:
        """Poll `model_dir` every `poll_s` seconds and reload when it changes; runs until cancelled, never dies."""
        while True:
            await asyncio.sleep(poll_s)
            try:
                fp = fingerprint(self.model_dir)
                if (self.current is not None and fp == self.current.fingerprint) or fp == self._refused:
                    continue
                await self.reload()
            except ModelLoadError:
                continue  # counted and logged by reload; the old model keeps serving
            except Exception:  # e.g. a symlink loop in fingerprint(): log, poll again
                log.exception("model watcher: looking at %s failed; still serving, polling again", self.model_dir)
