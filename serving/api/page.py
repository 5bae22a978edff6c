"""GET /: the demo page (plain HTML and JS, no CDN) to upload an image and see the skeleton overlay."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["page"])
_PAGE = Path(__file__).resolve().parent.parent / "static" / "index.html"


@cache
def _page() -> str:
    return _PAGE.read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index() -> HTMLResponse:
    return HTMLResponse(_page())
