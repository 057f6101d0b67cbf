"""``/ui``: the upload page. One HTML page, one script and one stylesheet, package data under
``anomalyops_api/static/ui/``, served by the API itself: nothing from a CDN, no inline script.

The page needs no key to load (it is static and holds no data); the person using it types a
scoring key, which the script keeps in memory (or in the tab's ``sessionStorage`` if asked) and
sends in ``X-API-Key`` to the same endpoints curl uses (``/v1/jobs``, ``/v1/models``).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

from anomalyops_api.errors import NotFound

router = APIRouter(include_in_schema=False)

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""Scripts and styles from this origin only (no inline ones), API calls to this origin only."""

PAGE = "index.html"
ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
"""The only files served under ``/ui/``: a fixed list, so no path reaches the filesystem."""

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> bytes:
    return (files("anomalyops_api") / "static" / "ui" / name).read_bytes()


@router.get("/ui")
async def upload_page() -> Response:
    return Response(_read(PAGE), media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/ui/{name}")
async def upload_page_asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no asset {name!r} under /ui/")
    return Response(_read(name), media_type=media_type, headers=HEADERS)
