"""Write the API server's OpenAPI schema to docs/openapi.json, the reference docs/api.md points to.

    .venv/bin/python scripts/export_openapi.py            # regenerate docs/openapi.json
    .venv/bin/python scripts/export_openapi.py --check    # exit 1 when the committed file is stale

The schema comes from `serving.app.create_app` itself (routes, request and response models), so
it cannot drift from the code without tests/test_deploy.py noticing. No model is loaded: the app's
lifespan never runs, and its state folders point into a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "openapi.json"


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the server as `create_app` builds it (a JSON-ready dict)."""
    sys.path.insert(0, str(ROOT))
    from serving.app import create_app
    from serving.settings import ServingSettings

    with tempfile.TemporaryDirectory(prefix="posewheel-openapi-") as tmp:
        state = Path(tmp)
        settings = ServingSettings(
            model_dir=state / "models" / "production",
            predictions_dir=state / "predictions",
            image_store_dir=state / "images",
            outbox_dir=state / "outbox",
        )
        return create_app(settings).openapi()


def render(document: dict[str, Any]) -> str:
    """The file's exact text: two-space indented JSON, keys in the app's order, final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) the OpenAPI file; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write (default docs/openapi.json)")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the file differs")
    args = parser.parse_args(argv)
    text = render(openapi_document())
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is stale: run `.venv/bin/python scripts/export_openapi.py`", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(document_paths(text))} paths)")
    return 0


def document_paths(text: str) -> list[str]:
    """The URL paths an OpenAPI text documents."""
    return sorted(json.loads(text).get("paths", {}))


if __name__ == "__main__":
    sys.exit(main())
