"""readmit tells Airflow through its REST API: the requests a stub webserver on loopback gets.

Airflow 2's ``/api/v1`` is pinned with ``airflow_3=False`` and Airflow 3's ``/api/v2`` with
``airflow_3=True``, so both are exercised whichever Airflow is installed.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from anomalyops_airflow import events
from tests.helpers.common import free_port


class StubAirflow:
    """``POST /api/v1/datasets/events`` answered with a fixed status; requests are kept.

    Also Airflow 3's ``POST /auth/token`` (201 and a token) and ``GET /api/v2/assets`` (the
    validated-data asset, id 5), so a v2 exchange reaches ``POST /api/v2/assets/events``.
    """

    def __init__(self, status: int = 200) -> None:
        self.status, self.requests = status, []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def reply(self, status: int, answer: object) -> None:
                reply = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def do_GET(self) -> None:
                stub.requests.append((self.path, dict(self.headers), None))
                asset = {"id": 5, "uri": "x-anomalyops://lake/validated"}
                self.reply(200, {"assets": [asset], "total_entries": 1})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append((self.path, dict(self.headers), body))
                if self.path == "/auth/token":
                    self.reply(201, {"access_token": "stub-jwt"})
                    return
                reply = json.dumps({"detail": "stub"} if stub.status != 200 else body).encode()
                self.send_response(stub.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StubAirflow:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def announce(ds: str, path: str, **kwargs):
    return events.announce_validated(ds, path, airflow_3=kwargs.pop("airflow_3", False), **kwargs)


def env_for(url: str, **extra: str) -> dict[str, str]:
    return {
        events.URL_ENV: url,
        events.USER_ENV: "ops",
        events.PASSWORD_ENV: "s3cret",
        **extra,
    }


def test_readmit_posts_the_dataset_event_to_the_rest_api():
    with StubAirflow() as airflow:
        said = announce(
            "2026-11-06", "/lake/validated/ds=2026-11-06", env=env_for(airflow.url + "/")
        )
    assert said.startswith("recorded a Dataset event for 2026-11-06")
    ((path, headers, body),) = airflow.requests
    assert path == "/api/v1/datasets/events"
    assert body == {
        "dataset_uri": "x-anomalyops://lake/validated",
        "extra": {"ds": "2026-11-06", "path": "/lake/validated/ds=2026-11-06", "via": "readmit"},
    }
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"ops:s3cret").decode()
    assert headers["Content-Type"] == "application/json"


def test_the_url_defaults_to_airflows_base_url():
    with StubAirflow() as airflow:
        env = env_for("", AIRFLOW__WEBSERVER__BASE_URL=airflow.url)
        assert announce("2026-11-06", "p", env=env).startswith("recorded")
    assert len(airflow.requests) == 1


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (404, "does not know the validated-data Dataset"),
        (401, "check ANOMALYOPS_AIRFLOW_API_USER/ANOMALYOPS_AIRFLOW_API_PASSWORD"),
        (403, "HTTP 403"),
        (500, "HTTP 500"),
    ],
)
def test_a_refused_event_says_why_and_what_to_do(status, says):
    with StubAirflow(status) as airflow:
        said = announce("2026-11-06", "p", env=env_for(airflow.url))
    assert says in said and "airflow dags trigger anomalyops_train" in said


def test_without_configuration_nothing_is_sent_and_the_message_names_the_settings():
    said = announce("2026-11-06", "p", env={})
    assert said.startswith("did not tell Airflow about 2026-11-06")
    for name in ("ANOMALYOPS_AIRFLOW_API_URL", "AIRFLOW__WEBSERVER__BASE_URL"):
        assert name in said
    assert "ANOMALYOPS_AIRFLOW_API_PASSWORD" in said


def test_an_unreachable_webserver_is_reported_not_raised():
    said = announce("2026-11-06", "p", env=env_for(f"http://127.0.0.1:{free_port()}"), timeout_s=2)
    assert said.startswith("could not reach Airflow's REST API") and "ConnectError" in said


def test_readmit_on_airflow_3_gets_a_token_then_posts_the_asset_event():
    with StubAirflow() as airflow:
        said = announce("2026-11-06", "p", env=env_for(airflow.url), airflow_3=True)
    assert said.startswith("recorded an asset event for 2026-11-06"), said
    (token, _, credentials), (lookup, _, _), (path, headers, body) = airflow.requests
    assert (token, credentials) == ("/auth/token", {"username": "ops", "password": "s3cret"})
    assert lookup == "/api/v2/assets?uri_pattern=x-anomalyops%3A%2F%2Flake%2Fvalidated&limit=100"
    assert path == "/api/v2/assets/events"
    assert body == {"asset_id": 5, "extra": {"ds": "2026-11-06", "path": "p", "via": "readmit"}}
    assert headers["Authorization"] == "Bearer stub-jwt"


def test_an_unreachable_api_server_is_reported_not_raised_on_airflow_3():
    said = announce(
        "2026-11-06",
        "p",
        env=env_for(f"http://127.0.0.1:{free_port()}"),
        timeout_s=2,
        airflow_3=True,
    )
    assert said.startswith("could not reach Airflow's REST API") and "/auth/token" in said
