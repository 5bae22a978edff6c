"""Every `posewheel` command, the plugins' included, explains itself: `--help` works and says what each option is.

The commands are collected the way a user gets them: `posewheel.cli.main()` registers the core and
every `posewheel.commands` entry point, then the click tree is walked to the leaves.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from posewheel import cli

Command = Any  # typer's vendored click Command: only its public attributes (help, params) are read

# Imports that would make `posewheel --help` slow (seconds each): commands import them when they run.
HEAVY_MODULES = ("torch", "torchvision", "lightning", "pytorch_lightning", "onnxruntime", "fastapi", "wandb", "dvc")


@pytest.fixture(scope="module")
def root_command() -> TyperGroup:
    """The full `posewheel` click group, after main() has registered every package's commands."""
    argv = sys.argv
    sys.argv = ["posewheel", "--help"]
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.main()
    finally:
        sys.argv = argv
    assert exit_info.value.code in (0, None), "posewheel --help failed while registering commands"
    group = typer.main.get_command(cli.app)
    assert isinstance(group, TyperGroup)
    return group


def walk(group: TyperGroup, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Command]]:
    """Every command under `group` with its path of names, depth first (groups included)."""
    ctx = typer.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, f"{' '.join((*path, name))} is listed but cannot be loaded"
        yield (*path, name), command
        if isinstance(command, TyperGroup):
            yield from walk(command, (*path, name))


def missing_help(command: Command) -> list[str]:
    """What a user would find unexplained in `command --help`: the command itself or any parameter."""
    problems = [] if (command.help or command.short_help or "").strip() else ["the command has no help text"]
    for param in command.params:
        if getattr(param, "hidden", False) or param.name == "help":
            continue
        if not (getattr(param, "help", None) or "").strip():
            problems.append(f"parameter {param.name!r} has no help text")
    return problems


def test_every_command_has_help_for_itself_and_each_option(root_command: TyperGroup) -> None:
    commands = list(walk(root_command))
    assert any(path == ("validate",) for path, _ in commands), "the core 'validate' command is not registered"
    problems = [f"posewheel {' '.join(path)}: {p}" for path, cmd in commands for p in missing_help(cmd)]
    assert not problems, "incomplete --help:\n" + "\n".join(problems)


def test_every_command_help_exits_zero_and_shows_its_usage(root_command: TyperGroup) -> None:
    runner = CliRunner()
    failures = []
    for path, _ in walk(root_command):
        result = runner.invoke(cli.app, [*path, "--help"], prog_name="posewheel")
        usage = f"posewheel {' '.join(path)}"
        if result.exit_code != 0 or usage not in result.output:
            failures.append(f"{usage} --help: exit {result.exit_code}\n{result.output[-500:]}")
    assert not failures, "\n".join(failures)


def test_help_checker_flags_an_undocumented_option() -> None:
    app = typer.Typer()

    @app.command()
    def documented(count: int = typer.Option(1, help="how many")) -> None:
        """Do a thing."""

    @app.command()
    def bare(count: int = 1) -> None:
        pass

    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    found = {path: missing_help(cmd) for path, cmd in walk(group)}
    assert found[("documented",)] == []
    assert found[("bare",)] == ["the command has no help text", "parameter 'count' has no help text"]


def test_top_level_help_imports_no_heavy_library() -> None:
    probe = (
        "import json, sys\n"
        "sys.argv = ['posewheel', '--help']\n"
        "from posewheel.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        f"print(json.dumps({{'code': code, 'heavy': sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["code"] in (0, None)
    assert result["heavy"] == [], f"`posewheel --help` imports {result['heavy']}: move those imports into the commands"


def test_every_command_plugin_loads_in_the_full_install() -> None:
    """A plugin that fails to import is skipped silently by the CLI; in the dev install none may fail."""
    from importlib.metadata import entry_points

    plugins = {ep.name: ep for ep in entry_points(group="posewheel.commands")}
    assert set(plugins) >= {"training", "serving", "labeling", "flywheel"}, f"entry points: {sorted(plugins)}"
    failures = []
    for name, ep in sorted(plugins.items()):
        try:
            ep.load()
        except ImportError as exc:
            failures.append(f"{name} ({ep.value}): {exc}")
    assert not failures, "command plugins that cannot be imported:\n" + "\n".join(failures)
