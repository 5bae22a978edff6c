"""A benchmark's `--variant name=key=value[,key=value]`: settings over a params.yaml section, values read as YAML.

parse_variant("crops2=distill_batch=2,lr=1e-4")   # ("crops2", {"distill_batch": 2, "lr": 0.0001})
"""

from __future__ import annotations

from typing import Any

import yaml


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """`name=key=value,key=value` -> (name, {key: YAML value}); SystemExit with the sentence when malformed."""
    name, _, rest = text.partition("=")
    if not name or not rest:
        raise SystemExit(f"--variant {text!r}: expected name=key=value[,key=value]")
    values = {}
    for pair in rest.split(","):
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--variant {text!r}: {pair!r} is not key=value")
        values[key.strip()] = yaml.safe_load(value)
    return name, values
