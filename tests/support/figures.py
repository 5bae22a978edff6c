"""How a benchmark reports: one JSON line per figure on stdout, flushed at once.

emit("load", benchmark="serve_load", img_per_s=412.0)   # {"benchmark": ..., "figure": "load", ...}
"""

from __future__ import annotations

import json
from typing import Any


def emit(figure: str, *, benchmark: str | None = None, **fields: Any) -> None:
    """Print one figure as a JSON line; `benchmark` (when given) names the script it comes from."""
    head = {"benchmark": benchmark} if benchmark else {}
    print(json.dumps({**head, "figure": figure, **fields}), flush=True)
