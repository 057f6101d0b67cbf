"""The published OpenAPI and routing tell the truth; the docs pages need no internet."""

from __future__ import annotations

import re

import pytest

from tests.helpers.api import publish


@pytest.fixture(autouse=True)
def serving(tmp_path):
    publish(tmp_path / "serving", 3)


def test_every_422_is_described_by_the_error_body_the_api_sends(start_app) -> None:
    with start_app() as client:
        schema = client.get("/openapi.json").json()
        sent = client.get("/v1/jobs/not-an-id").json()  # a real 422 from path validation
    assert set(sent) == {"detail", "errors"} and isinstance(sent["detail"], str)
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    error = schema["components"]["schemas"]["ErrorResponse"]
    assert error["properties"]["detail"]["type"] == "string"
    assert "errors" in error["properties"] and "limit" in error["properties"]
    seen = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            response = operation["responses"].get("422")
            if response is None:
                continue
            seen += 1
            ref = response["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/ErrorResponse"), (method, path)
    assert seen >= 5


@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/v1/jobs/" + "a" * 32, "GET, DELETE"), ("/v1/score", "POST"), ("/healthz", "GET")],
)
def test_405_and_options_list_every_method_of_the_path(start_app, path, allowed) -> None:
    with start_app() as client:
        for method in ("OPTIONS", "PATCH"):
            response = client.request(method, path)
            assert response.status_code == 405
            assert response.headers["allow"] == allowed


def test_docs_and_redoc_load_their_assets_from_the_service(start_app) -> None:
    with start_app() as client:
        for page in ("/docs", "/redoc"):
            html = client.get(page).text
            assets = re.findall(r"""(?:src|href)=["']([^"']+\.(?:js|css))""", html)
            assert assets, page
            for asset in assets:
                assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
                assert client.get(asset).status_code == 200, asset
