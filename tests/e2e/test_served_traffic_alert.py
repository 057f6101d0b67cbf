"""The daily served-traffic check against the real scoring API under uvicorn: no model yet is a
skip; a day whose uploads alarm far above the calibrated rate sends one "served traffic
drifted" email and is recorded in the lake; the next day counts only what was served since."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from airflow.exceptions import AirflowSkipException

from anomalyops.lake import Lake
from anomalyops.served_traffic import read_day
from anomalyops_airflow import tasks
from tests.helpers.api import (
    ADMIN_KEY,
    KEY,
    UvicornProcess,
    csv_bytes,
    expected,
    make_frame,
    publish,
)
from tests.helpers.common import point_smtp_at

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def api(tmp_path):
    serving = tmp_path / "serving"
    serving.mkdir()
    proc = UvicornProcess(
        {
            "ANOMALYOPS_API_MODEL_DIR": str(serving),
            "ANOMALYOPS_API_STATE_DIR": str(tmp_path / "state"),
            "ANOMALYOPS_API_SPOOL_DIR": str(tmp_path),
            "ANOMALYOPS_API_KEYS": KEY,
            "ANOMALYOPS_API_ADMIN_KEY": ADMIN_KEY,
            "ANOMALYOPS_API_POLL_INTERVAL_S": "0.25",
        },
        tmp_path / "uvicorn.log",
    )
    try:
        yield proc, serving
    finally:
        proc.stop()


def _wait_for_version(url: str, version: int, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = httpx.get(f"{url}/v1/models/active", headers={"X-API-Key": KEY}, timeout=5)
        if reply.status_code == 200 and reply.json()["version"] == version:
            return
        time.sleep(0.25)
    raise AssertionError(f"version {version} not served after {timeout} s")


def _wait_up(url: str, timeout: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/healthz", timeout=2).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise AssertionError("the API did not start")


def test_a_drifted_day_of_uploads_sends_one_alert_and_is_recorded(
    api, settings_env, monkeypatch, mail_sink, tmp_path
):
    proc, serving = api
    monkeypatch.setenv("ANOMALYOPS_API_URL", proc.url)
    monkeypatch.setenv("ANOMALYOPS_API_ADMIN_KEY", ADMIN_KEY)
    point_smtp_at(monkeypatch, mail_sink.port)
    settings = settings_env()
    _wait_up(proc.url)

    with pytest.raises(AirflowSkipException, match="no model served yet"):
        tasks.check_served_traffic("2026-12-01")

    frame = make_frame(3000, seed=3)
    # Calibrated for 1 % (threshold_quantile 0.99), but half of these rows cross the threshold.
    publish(serving, 1, threshold=float(np.quantile(expected(frame), 0.5)))
    _wait_for_version(proc.url, 1)
    reply = httpx.post(
        f"{proc.url}/v1/score",
        files={"file": ("day.csv", csv_bytes(frame), "text/csv")},
        headers={"X-API-Key": KEY},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text

    out = tasks.check_served_traffic("2026-12-01")
    assert out["status"] == "above_band" and out["rows"] == 3000
    assert out["alarm_rate"] == pytest.approx(0.5, abs=0.01)
    (msg,) = mail_sink.wait_for(1)
    assert msg["Subject"].startswith("[anomalyops] served traffic drifted on 2026-12-01: model 1")
    lake = Lake(settings.lake_root)
    day = read_day(lake, "2026-12-01")
    assert day.status.value == "above_band" and day.alerts[0]["sent"] is True
    assert Path(out["record"].removeprefix("file://")).exists()

    # The next day nothing new was served: it is judged on its own share, not the total.
    nxt = tasks.check_served_traffic("2026-12-02")
    assert nxt["status"] == "no_traffic" and nxt["rows"] == 0
    assert read_day(lake, "2026-12-02").baseline == "2026-12-01"
    assert len(mail_sink.messages()) == 1
