"""What a person sees in the terminal: each step with its time, a bar where the count is known; the rest in a log file.

    log_file = console.start_log(settings.var_dir / "log", "demo")   # var/log/demo-20261130-172501.log
    with console.stage("send 900 street images") as step:
        bar = step.bar("answered", total=900)
        ...  # bar.advance() per answer
        step.result("900 answered, 312 queued for review")
    code = console.run_logged(["dvc", "repro"], log_file, on_output=watch)

Prints `✓ send 900 street images  2 min 10 s  900 answered, 312 queued for review` when the step ends
(a spinner and the bars while it runs, on a terminal). Library logs and child processes' output go
to the log file; the terminal keeps warnings and errors.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

log = logging.getLogger(__name__)

terminal = Console(highlight=False)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`."""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


class _Count(ProgressColumn):
    """`312/900 images`, `4.2/12 min`."""

    def render(self, task: Task) -> Text:
        done, total = round(task.completed, 1), round(task.total or 0, 1)
        return Text(f"{done:g}/{total:g} {task.fields.get('unit', '')}".rstrip())


class Bar:
    """One progress row of a step: `advance` by a count, or `update` to an absolute one."""

    def __init__(self, progress: Progress, task: TaskID):
        self._progress, self._task = progress, task

    def advance(self, amount: float = 1) -> None:
        self._progress.advance(self._task, amount)

    def update(self, completed: float) -> None:
        self._progress.update(self._task, completed=completed)

    def finish(self) -> None:
        """Fill the bar (a step that ends before its budget)."""
        total = self._progress.tasks[self._task].total
        self._progress.update(self._task, completed=total)


class Stage:
    """A running step: its spinner line can say what it is doing, it can show bars, and leave a result line."""

    def __init__(self, name: str):
        self.name = name
        self.summary = ""
        # Two tables, so a long step name does not squeeze the bars' columns.
        self.line = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=terminal)
        self.bars = Progress(
            TextColumn("  {task.description}"),
            BarColumn(bar_width=30),
            _Count(),
            TimeRemainingColumn(),
            console=terminal,
        )
        self._row = self.line.add_task(name, total=None)

    def status(self, text: str) -> None:
        """Show `text` after the step's name on its spinner line (e.g. the DVC stage running)."""
        self.line.update(self._row, description=f"{self.name} [dim]· {text}[/]")

    def bar(self, description: str, total: float, unit: str = "") -> Bar:
        """A new bar under the step, from 0 to `total` (`unit` follows the count: `images`, `min`)."""
        return Bar(self.bars, self.bars.add_task(description, total=total, unit=unit))

    def result(self, text: str) -> None:
        """What the step achieved, printed after its time when it ends."""
        self.summary = text


@contextlib.contextmanager
def stage(name: str) -> Iterator[Stage]:
    """Run a step: a spinner with its elapsed time while it runs, then `✓ name  time  result` (or `✗`)."""
    step = Stage(name)
    # transient: the finished step is one line, not its last frame of bars. Piped, nothing live is drawn,
    # so say what starts: a long step is not silence.
    live = Live(Group(step.line, step.bars), console=terminal, transient=True, refresh_per_second=8)
    if not terminal.is_terminal:
        terminal.print(f"… {name}", markup=False, soft_wrap=True)
    log.info("step started: %s", name)
    start = time.monotonic()
    try:
        with live if terminal.is_terminal else contextlib.nullcontext():
            yield step
    except BaseException:
        elapsed = duration(time.monotonic() - start)
        terminal.print(f"[red]✗[/] {name} [red]failed after {elapsed}[/]", soft_wrap=True)
        log.info("step failed: %s after %s", name, elapsed)
        raise
    elapsed = duration(time.monotonic() - start)
    terminal.print(f"[green]✓[/] {name}  [dim]{elapsed}[/]  {step.summary}".rstrip(), soft_wrap=True)
    log.info("step done: %s in %s %s", name, elapsed, step.summary)


def start_log(log_dir: Path, name: str) -> Path:
    """Send this process's logs (INFO and up) to `log_dir/<name>-<UTC time>.log`; the terminal keeps warnings.

    Replaces the terminal handlers of the root logger (the CLI's `basicConfig`) with one that prints
    above the live bars. Returns the log file.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{name}-{datetime.now(UTC):%Y%m%d-%H%M%S}.log"
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter(LOG_FORMAT))
    to_terminal = RichHandler(console=terminal, level=logging.WARNING, show_time=False, show_path=False)
    root.addHandler(to_file)
    root.addHandler(to_terminal)
    root.setLevel(logging.INFO)
    log.setLevel(logging.INFO)  # the step markers, quiet on the terminal, belong in the file
    logging.captureWarnings(True)  # Python warnings reach the file too (and, being warnings, the terminal)
    return path


def run_logged(
    command: Sequence[str],
    log_file: Path,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    on_output: Callable[[list[str]], None] | None = None,
    poll_s: float = 0.5,
) -> int:
    """Run `command` with its stdout and stderr appended to `log_file`; returns its exit code.

    `on_output` is called every `poll_s` seconds with the complete lines written to the file since
    (the command's, and any other writer's), possibly none: enough to follow a DVC stage or a clock.
    """
    with open(log_file, "ab") as out:
        offset = out.tell()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    with open(log_file, "rb") as reader:
        reader.seek(offset)
        pending = b""
        while True:
            finished = process.poll() is not None
            pending += reader.read()
            *lines, pending = pending.split(b"\n")
            if on_output is not None:
                on_output([line.decode("utf-8", errors="replace") for line in lines])
            if finished:
                return process.returncode
            time.sleep(poll_s)


def tail(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a text file ('' when it does not exist)."""
    if not path.is_file():
        return ""
    with open(path, "rb") as file:
        file.seek(max(0, file.seek(0, 2) - 64_000))
        text = file.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])
