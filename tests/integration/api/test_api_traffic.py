"""GET /v1/models/{version}/traffic and the served_* metrics, through HTTP."""

from __future__ import annotations

import numpy as np
import pytest

from anomalyops_api.traffic import HISTOGRAM_EDGES
from tests.helpers.api import (
    KEY,
    csv_bytes,
    expected,
    make_frame,
    publish,
    submit,
    upload,
    wait_done,
)

H = {"X-API-Key": KEY}
THRESHOLD = 5.5  # the demo model flags ~0.7 % of make_frame's rows: within a 1 % calibration


def traffic(client, version: int) -> dict:
    r = client.get(f"/v1/models/{version}/traffic", headers=H)
    assert r.status_code == 200, r.text
    return r.json()


def histogram(scores: np.ndarray, threshold: float) -> list[int]:
    edges = [*HISTOGRAM_EDGES, np.inf]
    return np.histogram(np.clip(scores / threshold, 0, None), bins=edges)[0].tolist()


def test_sync_uploads_and_a_job_add_up_and_a_failed_upload_does_not(tmp_path, start_app):
    publish(tmp_path / "serving", 3, threshold=THRESHOLD)
    first, second, third = make_frame(600, seed=1), make_frame(700, seed=2), make_frame(900, seed=3)
    with start_app(keys=[KEY], csv_block_bytes=64 * 1024) as client:
        body = traffic(client, 3)  # on disk, nothing served yet
        assert body["status"] == "no_traffic" and body["rows"] == 0
        assert body["alarm_rate"] is None and body["since"] is None
        assert body["calibrated_alarm_rate"] == pytest.approx(0.01)
        assert body["histogram"]["counts"] == [0] * len(HISTOGRAM_EDGES)

        assert upload(client, csv_bytes(first)).status_code == 200
        body = traffic(client, 3)
        assert body["status"] == "too_few_rows" and body["rows"] == 600

        # A bad cell mid-file: earlier chunks were scored, but the upload failed: not served.
        bad = make_frame(3000, seed=9).astype({"vibration": object})
        bad.loc[2500, "vibration"] = "twelve"
        assert upload(client, csv_bytes(bad)).status_code == 422
        assert traffic(client, 3)["rows"] == 600

        assert upload(client, csv_bytes(second), params={"format": "json"}).status_code == 200
        job = wait_done(client, submit(client, csv_bytes(third)).json()["id"])
        assert job["status"] == "succeeded", job

        body = traffic(client, 3)
        scores = np.concatenate([expected(f) for f in (first, second, third)])
        assert (body["rows"], body["unscored"]) == (2200, 0)
        assert body["flagged"] == int((scores > THRESHOLD).sum())
        assert body["alarm_rate"] == pytest.approx(body["flagged"] / 2200)
        lo, hi = body["alarm_rate_interval"]["lo"], body["alarm_rate_interval"]["hi"]
        assert lo <= body["alarm_rate"] <= hi
        assert body["status"] == "within_band", body["summary"]
        assert body["max_alarm_rate"] == pytest.approx(0.05)
        assert body["histogram"]["edges"] == list(HISTOGRAM_EDGES)
        assert body["histogram"]["counts"] == histogram(scores, THRESHOLD)
        assert body["since"] <= body["last"]
        assert body["summary"].startswith("version 3: ") and "within the band" in body["summary"]

        metrics = client.get("/metrics").text
        assert 'anomalyops_api_served_rows_total{version="3"} 2200.0' in metrics
        assert f'anomalyops_api_served_alarms_total{{version="3"}} {body["flagged"]}.0' in metrics
        ratio = body["alarm_rate"] / 0.01
        line = next(
            s for s in metrics.splitlines() if s.startswith("anomalyops_api_served_alarm_ratio{")
        )
        assert float(line.split()[-1]) == pytest.approx(ratio)


def test_rows_far_above_the_threshold_are_above_the_band(tmp_path, start_app):
    publish(tmp_path / "serving", 4, threshold=0.05)  # every make_frame row scores > 6 x this
    with start_app(keys=[KEY], traffic_min_rows=500) as client:
        assert upload(client, csv_bytes(make_frame(800))).status_code == 200
        body = traffic(client, 4)
        assert body["status"] == "above_band", body
        assert (body["rows"], body["flagged"], body["alarm_rate"]) == (800, 800, 1.0)
        assert body["alarm_rate_interval"]["lo"] > body["max_alarm_rate"] == pytest.approx(0.05)
        assert body["min_rows"] == 500 and body["max_alarm_ratio"] == 5.0
        assert sum(body["histogram"]["counts"][HISTOGRAM_EDGES.index(5.0) :]) == 800
        assert "ABOVE the band" in body["summary"]
        assert 'anomalyops_api_served_alarm_ratio{version="4"} 100.0' in client.get("/metrics").text


def test_unknown_version_404_and_no_key_401(tmp_path, start_app):
    publish(tmp_path / "serving", 3)
    with start_app(keys=[KEY]) as client:
        r = client.get("/v1/models/99/traffic", headers=H)
        assert r.status_code == 404
        assert "model version 99" in r.json()["detail"]
        assert client.get("/v1/models/3/traffic").status_code == 401
        bad_key = client.get("/v1/models/3/traffic", headers={"X-API-Key": "wrong"})
        assert bad_key.status_code == 401
        assert client.get("/v1/models/-1/traffic", headers=H).status_code == 422
        assert client.get("/v1/models/3/traffic", headers=H).status_code == 200
