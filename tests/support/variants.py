"""A benchmark's `--variant name=key=value[,key=value]`: settings over a params.yaml section, values read as YAML.

parse_variant("crops2=distill_batch=2,lr=1e-4")   # ("crops2", {"distill_batch": 2, "lr": 0.0001})
parse_variant("zoom=scale=[0.8,2.0]")              # ("zoom", {"scale": [0.8, 2.0]}): a list's commas stay in it
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
    for pair in _pairs(rest):
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--variant {text!r}: {pair!r} is not key=value")
        values[key.strip()] = _number(yaml.safe_load(value))
    return name, values


def _pairs(text: str) -> list[str]:
    """`text` split at the commas outside brackets: `a=1,b=[2,3]` -> [`a=1`, `b=[2,3]`]."""
    pairs, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            pairs.append(text[start:i])
            start = i + 1
    return [*pairs, text[start:]]


def _number(value: Any) -> Any:
    """YAML 1.1 reads `1e-4` (no dot) as a string; a variant's number is a number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
