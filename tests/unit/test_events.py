"""readmit's REST calls on both Airflow lines, answered by an in-process fake (httpx.MockTransport).

The loopback-server tests in tests/integration/validation/test_readmit_events.py cover the wire;
these pin down what each line's API gets asked and how each refusal is reported.
"""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from anomalyops_airflow import events

URI = "x-anomalyops://lake/validated"
EXTRA = {"ds": "2026-11-06", "path": "/lake/validated/ds=2026-11-06", "via": "readmit"}
BASE = "http://airflow.test:8080"


def env_for(url: str = BASE, **extra: str) -> dict[str, str]:
    return {events.URL_ENV: url, events.USER_ENV: "ops", events.PASSWORD_ENV: "s3cret", **extra}


class FakeAirflow3:
    """The three routes readmit uses on Airflow 3, with a per-route status override."""

    def __init__(self, assets=None, **status: int) -> None:
        self.assets = (
            [{"id": 7, "uri": URI + "-old"}, {"id": 3, "uri": URI}] if assets is None else assets
        )
        self.status, self.requests = status, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = (request.method, request.url.path)
        if route == ("POST", "/auth/token"):
            return httpx.Response(self.status.get("token", 201), json={"access_token": "jwt-1"})
        if request.headers.get("Authorization") != "Bearer jwt-1":
            return httpx.Response(401, json={"detail": "Not authenticated"})
        if route == ("GET", "/api/v2/assets"):
            pattern = request.url.params["uri_pattern"].lower()
            found = [a for a in self.assets if pattern in a["uri"].lower()]
            return httpx.Response(
                self.status.get("lookup", 200), json={"assets": found, "total_entries": len(found)}
            )
        if route == ("POST", "/api/v2/assets/events"):
            return httpx.Response(self.status.get("events", 200), json={"id": 1})
        return httpx.Response(404, json={"detail": "Not Found"})


def announce3(fake, env=None, **kwargs):
    return events.announce_validated(
        EXTRA["ds"],
        EXTRA["path"],
        env=env_for() if env is None else env,
        airflow_3=True,
        transport=httpx.MockTransport(fake),
        **kwargs,
    )


def test_airflow_3_gets_a_token_finds_the_asset_and_posts_its_event():
    fake = FakeAirflow3()
    said = announce3(fake, env=env_for(BASE + "/"))
    assert said == (
        f"recorded an asset event for 2026-11-06 through {BASE}/api/v2/assets/events: "
        "the training DAG will run"
    )
    token, lookup, event = fake.requests
    assert (token.method, str(token.url)) == ("POST", BASE + "/auth/token")
    assert json.loads(token.content) == {"username": "ops", "password": "s3cret"}
    assert (lookup.method, lookup.url.path) == ("GET", "/api/v2/assets")
    assert lookup.url.params["uri_pattern"] == URI
    assert (event.method, event.url.path) == ("POST", "/api/v2/assets/events")
    # The exact URI's id, not the first substring match's.
    assert json.loads(event.content) == {"asset_id": 3, "extra": EXTRA}
    assert event.headers["Authorization"] == "Bearer jwt-1"


def test_airflow_3_defaults_to_the_api_base_url():
    fake = FakeAirflow3()
    env = env_for("", AIRFLOW__API__BASE_URL=BASE, AIRFLOW__WEBSERVER__BASE_URL="http://old")
    assert announce3(fake, env=env).startswith("recorded an asset event")
    assert {r.url.host for r in fake.requests} == {"airflow.test"}


@pytest.mark.parametrize(
    ("fake", "says"),
    [
        (FakeAirflow3(token=401), f"refused the token request (HTTP 401 from {BASE}/auth/token)"),
        (FakeAirflow3(lookup=403), f"refused the asset lookup (HTTP 403 from {BASE}/api/v2/assets"),
        (FakeAirflow3(events=403), "refused the asset event (HTTP 403 from"),
        (FakeAirflow3(assets=[]), f"does not know the validated-data asset {URI}"),
        (FakeAirflow3(assets=[{"id": 1, "uri": URI + "/other"}]), "does not know"),
        (FakeAirflow3(events=404), "does not know the validated-data asset"),
        (FakeAirflow3(token=404), f"did not answer the token request (HTTP 404 from {BASE}"),
        (FakeAirflow3(events=500), "did not answer the asset event (HTTP 500 from"),
    ],
)
def test_airflow_3_refusals_name_the_step_the_url_and_the_status(fake, says):
    said = announce3(fake)
    assert says in said, said
    assert said.endswith("`airflow dags trigger anomalyops_train`")


def test_airflow_3_401_names_the_settings_and_the_auth_manager_roles():
    said = announce3(FakeAirflow3(token=401))
    assert "ANOMALYOPS_AIRFLOW_API_USER/ANOMALYOPS_AIRFLOW_API_PASSWORD" in said
    assert "simple_auth_manager_users" in said


def test_airflow_3_a_token_answer_without_a_token_is_reported():
    said = announce3(lambda request: httpx.Response(201, json={"detail": "?"}))
    assert f"from {BASE}/auth/token had no access_token" in said


def test_airflow_3_a_non_json_answer_is_reported():
    said = announce3(lambda request: httpx.Response(200, text="<html>login</html>"))
    assert "was not a JSON object (HTTP 200 from" in said and "<html>login</html>" in said


def test_airflow_3_unreachable_is_reported_not_raised():
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    said = announce3(refuse)
    assert said.startswith(f"could not reach Airflow's REST API at {BASE}/auth/token (ConnectError")


def test_airflow_3_without_configuration_names_the_api_base_url():
    said = events.announce_validated("2026-11-06", "p", env={}, airflow_3=True)
    assert said.startswith("did not tell Airflow about 2026-11-06")
    assert "AIRFLOW__API__BASE_URL" in said and "asset event" in said


def test_airflow_2_posts_the_dataset_event_with_basic_auth():
    seen = []

    def answer(request):
        seen.append(request)
        return httpx.Response(200, json={})

    said = events.announce_validated(
        EXTRA["ds"],
        EXTRA["path"],
        env=env_for(),
        airflow_3=False,
        transport=httpx.MockTransport(answer),
    )
    assert said.startswith("recorded a Dataset event for 2026-11-06")
    (request,) = seen
    assert (request.method, str(request.url)) == ("POST", BASE + "/api/v1/datasets/events")
    assert json.loads(request.content) == {"dataset_uri": URI, "extra": EXTRA}
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"ops:s3cret").decode()


def test_the_installed_airflow_picks_the_api():
    from anomalyops_airflow.compat import AIRFLOW_3

    paths = []

    def answer(request):
        paths.append(request.url.path)
        return httpx.Response(404, json={})

    events.announce_validated("d", "p", env=env_for(), transport=httpx.MockTransport(answer))
    assert paths[0] == ("/auth/token" if AIRFLOW_3 else "/api/v1/datasets/events")
