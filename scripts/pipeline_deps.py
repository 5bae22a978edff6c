"""Rewrite the code deps of every dvc.yaml stage from the imports its script runs (or check them).

    .venv/bin/python scripts/pipeline_deps.py            # rewrite dvc.yaml's code deps in place
    .venv/bin/python scripts/pipeline_deps.py --check    # exit 1 when a stage's code deps are stale

A stage `name` runs `python -m flywheel.stages.<name>`; its code deps are the first-party files that
module runs, its imports followed transitively (tests/support/imports.py). Data deps, comments and a
folder dep that covers whole modules (posewheel/synth) are kept; tests/test_flywheel_pipeline_map.py
fails when the two disagree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is scripts/

from tests.support.imports import FIRST_PARTY, ROOT, code_files

DVC_YAML = ROOT / "dvc.yaml"
ITEM = "      - "


def _is_code(entry: str) -> bool:
    return entry.split("/")[0] in FIRST_PARTY


def rewrite(text: str) -> str:
    """`text` (dvc.yaml) with each stage's code deps replaced by what its script runs, sorted."""
    for name in yaml.safe_load(text)["stages"]:
        start = text.index("    deps:\n", text.index(f"\n  {name}:\n")) + len("    deps:\n")
        end = start
        entries = []
        while text.startswith(ITEM, end):
            line_end = text.index("\n", end) + 1
            entries.append(text[end + len(ITEM) : line_end - 1])
            end = line_end
        data = [e for e in entries if not _is_code(e)]
        folders = [e for e in entries if _is_code(e) and not e.endswith(".py")]
        runs = [f for f in code_files(f"flywheel.stages.{name}") if not any(f.startswith(d + "/") for d in folders)]
        text = text[:start] + "".join(f"{ITEM}{e}\n" for e in [*data, *sorted(runs + folders)]) + text[end:]
    return text


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with --check, compare) dvc.yaml's code deps; returns the exit code."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if a stage's code deps are stale")
    args = parser.parse_args(argv)
    current = DVC_YAML.read_text(encoding="utf-8")
    wanted = rewrite(current)
    if args.check:
        stale = current != wanted
        print(f"{DVC_YAML}: code deps {'are stale: run scripts/pipeline_deps.py' if stale else 'are current'}")
        return int(stale)
    DVC_YAML.write_text(wanted, encoding="utf-8")
    print(f"wrote the code deps of {DVC_YAML}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
