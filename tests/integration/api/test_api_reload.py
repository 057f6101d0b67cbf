"""Hot reload in-process: partial versions ignored, new ones served fast, bad ones skipped,
pin/unpin through the admin API."""

from __future__ import annotations

import shutil
import time

import numpy as np

from tests.helpers.api import (
    ADMIN_KEY,
    KEY,
    csv_bytes,
    expected,
    make_frame,
    publish,
    publish_corrupt,
    publish_partial,
    read_csv_reply,
    upload,
)

ADMIN = {"X-API-Key": ADMIN_KEY}


def served(client) -> int | None:
    return client.get("/readyz").json()["model_version"]


def wait_for_version(client, version: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if served(client) == version:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(
        f"version {version} not served after {timeout} s (serving {served(client)})"
    )


def score_version(client, frame) -> int:
    r = upload(client, csv_bytes(frame))
    assert r.status_code == 200, r.text
    return int(r.headers["x-model-version"])


def test_partial_ignored_completed_served_within_2s_corrupt_skipped(tmp_path, start_app) -> None:
    serving = tmp_path / "serving"
    publish(serving, 1, scale=1.0)
    frame = make_frame(200)
    # The default poll interval (1 s): "served within 2 s" must hold with it.
    with start_app(keys=[KEY], admin_key=ADMIN_KEY, poll_interval_s=1.0) as client:
        assert score_version(client, frame) == 1
        v2_dir, held = publish_partial(serving, 2, scale=2.0)
        time.sleep(2.5)  # two scans and more: the partial version must not be touched
        assert score_version(client, frame) == 1
        listing = client.get("/v1/models", headers={"X-API-Key": KEY}).json()
        assert {v["version"]: v["state"] for v in listing["versions"]} == {
            2: "incomplete",
            1: "serving",
        }

        shutil.move(str(held), v2_dir / "saved_model.pb")  # the copy completes
        assert wait_for_version(client, 2, timeout=2.0) <= 2.0
        r = upload(client, csv_bytes(frame))
        assert r.headers["x-model-version"] == "2"
        np.testing.assert_allclose(
            read_csv_reply(r.content)["anomaly_score"], expected(frame, scale=2.0), rtol=1e-5
        )

        publish_corrupt(serving, 3)
        time.sleep(2.5)
        assert score_version(client, frame) == 2
        listing = client.get("/v1/models", headers={"X-API-Key": KEY}).json()
        states = {v["version"]: v for v in listing["versions"]}
        assert states[3]["state"] == "failed" and "saved_model" in states[3]["error"]
        assert states[2]["state"] == "serving"
        metrics = client.get("/metrics").text
        assert "anomalyops_api_model_reload_failures_total 1.0" in metrics  # backing off
        assert "anomalyops_api_model_reloads_total 2.0" in metrics


def test_admin_reload_answers_with_the_new_version(tmp_path, start_app) -> None:
    serving = tmp_path / "serving"
    publish(serving, 10)
    # A slow poll, so only the admin call can explain a fast switch.
    with start_app(keys=[KEY], admin_key=ADMIN_KEY, poll_interval_s=3600) as client:
        publish(serving, 11, scale=3.0)
        r = client.post("/admin/reload", headers=ADMIN)
        assert r.status_code == 200
        body = r.json()
        assert (body["model_version"], body["previous_version"], body["changed"]) == (11, 10, True)
        assert body["failed_versions"] == []
        assert served(client) == 11
        publish_corrupt(serving, 12)
        body = client.post("/admin/reload", headers=ADMIN).json()
        assert body["model_version"] == 11 and not body["changed"]
        assert [f["version"] for f in body["failed_versions"]] == [12]
        # Each admin reload retries a failed version (the operator asked for it).
        body = client.post("/admin/reload", headers=ADMIN).json()
        assert [f["version"] for f in body["failed_versions"]] == [12]


def test_pin_rollback_unpin_and_pin_survives_restart(tmp_path, start_app) -> None:
    serving = tmp_path / "serving"
    publish(serving, 1, scale=1.0)
    publish(serving, 2, scale=2.0)
    frame = make_frame(50)
    with start_app(keys=[KEY], admin_key=ADMIN_KEY) as client:
        assert score_version(client, frame) == 2
        assert (
            client.post("/admin/pin", json={"version": 1}, headers={"X-API-Key": KEY}).status_code
            == 403
        )
        r = client.post("/admin/pin", json={"version": 1}, headers=ADMIN)
        assert r.status_code == 200 and r.json()["model_version"] == 1
        assert r.json()["pinned_version"] == 1
        publish(serving, 3, scale=3.0)
        time.sleep(0.5)
        assert score_version(client, frame) == 1  # pinned: no roll-forward
        listing = client.get("/v1/models", headers={"X-API-Key": KEY}).json()
        assert listing["policy"] == "pinned" and listing["pinned_version"] == 1
        assert client.post("/admin/pin", json={"version": 99}, headers=ADMIN).status_code == 404
        assert client.post("/admin/pin", json={"version": -1}, headers=ADMIN).status_code == 422
    with start_app(keys=[KEY], admin_key=ADMIN_KEY) as client:  # restart
        assert served(client) == 1
        r = client.post("/admin/unpin", headers=ADMIN)
        assert r.json()["model_version"] == 3 and r.json()["pinned_version"] is None
        assert score_version(client, frame) == 3


def test_not_ready_until_the_first_push(tmp_path, start_app) -> None:
    with start_app() as client:  # development mode, no keys: open, with a warning
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "not ready"
        r = upload(client, csv_bytes(make_frame(3)), key=None)
        assert r.status_code == 503 and "no model" in r.json()["detail"]
        publish(tmp_path / "serving", 5)
        wait_for_version(client, 5, timeout=5)
        assert upload(client, csv_bytes(make_frame(3)), key=None).status_code == 200


def test_requests_in_flight_finish_on_their_version(tmp_path, start_app) -> None:
    """A request that took version 1 keeps it even if version 2 is swapped in meanwhile."""
    from anomalyops_api.routes import scoring as scoring_route

    serving = tmp_path / "serving"
    publish(serving, 1, scale=1.0)
    frame = make_frame(100)
    with start_app(keys=[KEY], admin_key=ADMIN_KEY, poll_interval_s=3600) as client:
        original = scoring_route.score_file
        swapped = []

        def score_after_a_swap(*args, **kwargs):
            publish(serving, 2, scale=2.0)
            client.app.state.registry.refresh()  # swap while this request is in flight
            swapped.append(client.app.state.registry.active.version)
            return original(*args, **kwargs)

        scoring_route.score_file = score_after_a_swap
        try:
            r = upload(client, csv_bytes(frame))
        finally:
            scoring_route.score_file = original
        assert swapped == [2]
        assert r.headers["x-model-version"] == "1"
        np.testing.assert_allclose(
            read_csv_reply(r.content)["anomaly_score"], expected(frame), rtol=1e-5
        )
        assert score_version(client, frame) == 2
