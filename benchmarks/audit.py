"""Known vulnerabilities in the locked dependencies: `pip-audit` over `pip freeze` of .venv and .venv-serve.

    .venv/bin/pip install pip-audit          # once
    .venv/bin/python benchmarks/audit.py

Each environment's `pip freeze` (the project itself and other local/editable installs left out) is
audited with `pip-audit -r FILE --no-deps --disable-pip` against PyPI's advisory database (it needs
the network to pypi.org). Figures (one JSON line per environment):

  audit      environment, packages audited, vulnerable packages, findings [{package, version, id,
             aliases, fix_versions}], or `error` (e.g. the advisory service unreachable)
  baseline   the same audit of one pinned package with a known advisory (requests 2.19.0), which must
             report it: proof that the service answered and that an empty list means "none known"
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from tests.support.figures import emit

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = (".venv", ".venv-serve")
KNOWN_VULNERABLE = "requests==2.19.0"  # CVE-2018-18074 among others


def frozen_requirements(venv: Path) -> list[str]:
    """`pip freeze` of `venv` as pinned `name==version` lines (editable and local installs left out)."""
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if "==" in line and not line.startswith(("-e", "#"))]


def pip_audit(requirements: list[str], timeout_s: float = 600) -> dict[str, Any]:
    """Run pip-audit on pinned `requirements`; its JSON report, or {"error": ...}."""
    executable = shutil.which("pip-audit", path=str(Path(sys.executable).parent)) or shutil.which("pip-audit")
    if executable is None:
        return {"error": "pip-audit is not installed: `.venv/bin/pip install pip-audit`"}
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(requirements) + "\n")
    try:
        proc = subprocess.run(
            [
                executable,
                "-r",
                handle.name,
                "--no-deps",
                "--disable-pip",
                "--format",
                "json",
                "--progress-spinner",
                "off",
                "--timeout",
                "30",
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"pip-audit took over {timeout_s:.0f} s (advisory service unreachable?)"}
    finally:
        Path(handle.name).unlink(missing_ok=True)
    # exit 1 means "vulnerabilities found"; anything without a JSON report is a failure to audit
    try:
        return dict(json.loads(proc.stdout))
    except json.JSONDecodeError:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"pip-audit exited {proc.returncode} without a report: {' | '.join(tail)[:500]}"}


def findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per (package, advisory) in a pip-audit JSON report."""
    return [
        {
            "package": dep["name"],
            "version": dep.get("version"),
            "id": vuln["id"],
            "aliases": vuln.get("aliases", []),
            "fix_versions": vuln.get("fix_versions", []),
        }
        for dep in report.get("dependencies", [])
        for vuln in dep.get("vulns", [])
    ]


def main() -> None:
    baseline = pip_audit([KNOWN_VULNERABLE])
    known = findings(baseline)
    reachable = bool(known)
    why = baseline.get("error") or next(
        (d.get("skip_reason") for d in baseline.get("dependencies", []) if d.get("skip_reason")), None
    )
    error = None if reachable else f"the advisory database did not answer for a known-vulnerable pin: {why}"
    emit("baseline", requirement=KNOWN_VULNERABLE, advisories=len(known), advisory_db_reachable=reachable, error=error)
    for name in ENVIRONMENTS:
        venv = ROOT / name
        if not (venv / "bin" / "python").exists():
            emit("audit", environment=name, error=f"{venv} does not exist (make install / make serve-venv)")
            continue
        requirements = frozen_requirements(venv)
        report = pip_audit(requirements)
        found = findings(report)
        skipped = [d["name"] for d in report.get("dependencies", []) if d.get("skip_reason")]
        error = report.get("error")
        if error is None and len(skipped) == len(requirements):
            error = "no package could be audited: the advisory database is unreachable from here"
        emit(
            "audit",
            environment=name,
            packages=len(requirements),
            audited=len(requirements) - len(skipped),
            vulnerable_packages=len({f["package"] for f in found}),
            advisories=len(found),
            findings=found,
            skipped=len(skipped),
            advisory_db_reachable=reachable,
            error=error,
        )


if __name__ == "__main__":
    main()
