"""The upload page (/ui) in-process: served by the API with a strict CSP, its assets from the
API too, nothing fetched from elsewhere; /docs and /redoc load their assets from the API."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from anomalyops_api.main import create_app
from tests.helpers.api import ADMIN_KEY, KEY, api_settings

URL = re.compile(r"https?://", re.IGNORECASE)


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text inside <script> tags."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data) -> None:
        if self._in_script:
            self.script_text.append(data)


def _client(tmp_path: Path, **overrides) -> TestClient:
    # No lifespan (no `with`): the page is static, so no model and no TensorFlow are needed.
    return TestClient(create_app(api_settings(tmp_path, **overrides)))


def _parse(html: str) -> _Tags:
    tags = _Tags()
    tags.feed(html)
    return tags


def _csp(header: str) -> dict[str, str]:
    return {
        part.split()[0]: " ".join(part.split()[1:])
        for part in (p.strip() for p in header.split(";"))
        if part
    }


def test_page_has_a_strict_csp_and_its_assets_come_from_the_api(tmp_path: Path) -> None:
    client = _client(tmp_path)
    r = client.get("/ui")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["x-content-type-options"] == "nosniff"
    csp = _csp(r.headers["content-security-policy"])
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["connect-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
    assert "unsafe" not in r.headers["content-security-policy"]

    page = r.text
    assert not URL.search(page), URL.search(page)
    tags = _parse(page)
    # No inline script, no inline event handler, no inline style: the CSP would block them.
    assert "".join(tags.script_text).strip() == ""
    for tag, attrs in tags.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert "style" not in attrs, (tag, attrs)
    scripts = [a["src"] for t, a in tags.tags if t == "script"]
    styles = [a["href"] for t, a in tags.tags if t == "link" and a.get("rel") == "stylesheet"]
    assert scripts == ["ui/app.js"] and styles == ["ui/app.css"]
    for ref, media in [(scripts[0], "text/javascript"), (styles[0], "text/css")]:
        asset = client.get(f"/{ref}")  # relative to /ui, i.e. from the site root
        assert asset.status_code == 200, ref
        assert asset.headers["content-type"].startswith(media)
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert not URL.search(asset.text), (ref, URL.search(asset.text))
        assert "@import" not in asset.text and "url(" not in asset.text.replace("URL(", "")


def test_script_puts_server_text_on_the_page_as_text(tmp_path: Path) -> None:
    js = _client(tmp_path).get("/ui/app.js").text
    for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert unsafe not in js, unsafe
    assert "new Function" not in js
    # The key is kept in memory or sessionStorage, never in localStorage or a cookie.
    assert "localStorage" not in js and "document.cookie" not in js
    assert "textContent" in js


@pytest.mark.parametrize(
    "path", ["/ui/index.html", "/ui/nope.js", "/ui/..%2Fmain.py", "/ui/%2e%2e%2fsettings.py"]
)
def test_only_the_listed_assets_are_served(tmp_path: Path, path: str) -> None:
    r = _client(tmp_path).get(path)
    assert r.status_code == 404
    assert "import" not in r.text


def test_page_is_served_in_production_without_a_key(tmp_path: Path) -> None:
    # Static and holding no data: loading it needs no key; what it calls does.
    client = _client(tmp_path, environment="production", keys=[KEY], admin_key=ADMIN_KEY)
    assert client.get("/ui").status_code == 200
    assert client.get("/ui/app.js").status_code == 200
    assert client.get("/docs").status_code == 404  # docs default to off in production
    assert client.get("/v1/models").status_code == 401
    assert "/ui" not in client.get("/openapi.json").text  # no schema in production either


def test_ui_is_not_in_the_openapi_schema(tmp_path: Path) -> None:
    paths = _client(tmp_path).get("/openapi.json").json()["paths"]
    assert not any(p.startswith("/ui") for p in paths)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_load_their_assets_from_the_api(tmp_path: Path, path: str) -> None:
    client = _client(tmp_path)
    r = client.get(path)
    assert r.status_code == 200
    tags = _parse(r.text)
    refs = [a.get("src") or a.get("href") for t, a in tags.tags if t in ("script", "link")]
    refs = [ref for ref in refs if ref]
    assert refs and all(ref.startswith("/") and not ref.startswith("//") for ref in refs), refs
    for ref in refs:
        assert client.get(ref).status_code == 200, ref
    assert not URL.search(r.text.replace("http://testserver", "")), URL.search(r.text)
