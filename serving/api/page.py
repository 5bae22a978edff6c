"""GET /: the demo page (plain HTML and JS, no CDN) to upload an image and see the skeleton overlay."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from posewheel.draw import page_style

router = APIRouter(tags=["page"])
_PAGE = Path(__file__).resolve().parent.parent / "static" / "index.html"
_STYLE_SLOT = "__DRAW_STYLE__"  # where the page's script takes posewheel.draw's colours and low-score rule


@cache
def _page() -> str:
    page = _PAGE.read_text(encoding="utf-8")
    if page.count(_STYLE_SLOT) != 1:
        raise RuntimeError(f"{_PAGE} must hold {_STYLE_SLOT} exactly once")
    return page.replace(_STYLE_SLOT, json.dumps(page_style()))


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index() -> HTMLResponse:
    return HTMLResponse(_page())
