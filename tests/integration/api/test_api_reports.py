"""``GET /v1/models/{version}/report``: the evaluation gate's page, linked and served safely."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from anomalyops_api.demo_model import write_version
from anomalyops_api.main import create_app
from tests.helpers.api import ADMIN_KEY, KEY, SPEC, api_settings

PAGE = b"<!doctype html><title>report</title><svg></svg>"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("reports")
    serving = root / "serving"
    good = write_version(serving, 100, SPEC, evaluation_report="evaluation_report.html")
    (good / "evaluation_report.html").write_bytes(PAGE)
    write_version(serving, 101, SPEC)  # pushed before reports existed
    hostile = write_version(serving, 102, SPEC, evaluation_report="../../../etc/passwd")
    linked = write_version(serving, 103, SPEC, evaluation_report="evaluation_report.html")
    secret = root / "secret.html"
    secret.write_bytes(b"secret")
    os.symlink(secret, linked / "evaluation_report.html")
    assert hostile.exists()
    settings = api_settings(root, keys=[KEY], admin_key=ADMIN_KEY)
    with TestClient(create_app(settings)) as c:
        yield c


def _get(client: TestClient, path: str, key: str | None = KEY):
    return client.get(path, headers={"X-API-Key": key} if key else {})


def test_listing_links_the_report_of_versions_that_have_one(client: TestClient) -> None:
    versions = {v["version"]: v for v in _get(client, "/v1/models").json()["versions"]}
    assert versions[100]["evaluation_report_url"] == "/v1/models/100/report"
    assert versions[101]["evaluation_report_url"] is None
    assert versions[102]["evaluation_report_url"] is None  # a path is never linked


def test_the_report_is_served_as_a_static_page(client: TestClient) -> None:
    r = _get(client, "/v1/models/100/report")
    assert r.status_code == 200, r.text
    assert r.content == PAGE
    assert r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("version", "words"),
    [
        (101, "has no evaluation report"),
        (102, "has no evaluation report"),  # '../../../etc/passwd' is not a report name
        (103, "missing"),  # a symlink is not followed
        (999, "no complete model version 999"),
    ],
)
def test_versions_without_a_servable_report_answer_404(client, version, words) -> None:
    r = _get(client, f"/v1/models/{version}/report")
    assert r.status_code == 404, r.text
    assert words in r.json()["detail"]
    assert b"secret" not in r.content and b"root:" not in r.content


def test_the_report_needs_a_key(client: TestClient) -> None:
    assert _get(client, "/v1/models/100/report", key=None).status_code == 401
