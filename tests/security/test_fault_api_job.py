"""Fault injection: the API (a real uvicorn process) is SIGKILLed while it scores a job.

After a restart on the same state directory the job is re-queued and scored again, and its
result is byte-for-byte the result of the same file scored without interruption (and the
scores are the model's). Two API starts import TensorFlow, so this test takes ~40-60 s on
two cores (most of it those imports: 2 min with the machine loaded); the kill is the point.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.helpers.api import (
    ADMIN_KEY,
    KEY,
    UvicornProcess,
    expected,
    make_frame,
    parquet_bytes,
    read_csv_reply,
)

pytestmark = pytest.mark.timeout(300)

ROWS = 200_000
HEADERS = {"X-API-Key": KEY}


def _env(root: Path) -> dict[str, str]:
    return {
        "ANOMALYOPS_API_ENVIRONMENT": "production",
        "ANOMALYOPS_API_MODEL_DIR": str(root / "serving"),
        "ANOMALYOPS_API_STATE_DIR": str(root / "state"),
        "ANOMALYOPS_API_SPOOL_DIR": str(root),
        "ANOMALYOPS_API_KEYS": KEY,
        "ANOMALYOPS_API_ADMIN_KEY": ADMIN_KEY,
        "ANOMALYOPS_API_POLL_INTERVAL_S": "0.25",
        # Small batches: the job takes long enough to be killed in the middle of it.
        "ANOMALYOPS_API_PARQUET_BATCH_ROWS": "256",
        "ANOMALYOPS_API_MIN_FREE_DISK_BYTES": "0",
    }


def _submit(url: str, data: bytes) -> str:
    reply = httpx.post(
        f"{url}/v1/jobs",
        files={"file": ("day.parquet", data, "application/octet-stream")},
        headers=HEADERS,
        timeout=60,
    )
    assert reply.status_code == 202, reply.text
    return reply.json()["id"]


def _job(url: str, job_id: str) -> dict:
    reply = httpx.get(f"{url}/v1/jobs/{job_id}", headers=HEADERS, timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _result(url: str, job_id: str, timeout: float = 120) -> tuple[dict, bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = _job(url, job_id)
        if job["status"] in ("succeeded", "failed", "expired"):
            assert job["status"] == "succeeded", job
            body = httpx.get(f"{url}/v1/jobs/{job_id}/result", headers=HEADERS, timeout=60)
            assert body.status_code == 200, body.text
            return job, body.content
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} did not finish: {job}")


def test_a_job_killed_with_the_api_is_rerun_and_gives_the_uninterrupted_result(tmp_path):
    (tmp_path / "serving").mkdir()
    api = UvicornProcess(_env(tmp_path), tmp_path / "uvicorn-1.log")
    try:
        # Written while the server imports TensorFlow; its poll picks the version up.
        subprocess.run(
            [sys.executable, "-m", "anomalyops_api.demo_model", str(tmp_path / "serving"),
             "--version", "1"],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip
        api.wait_ready(timeout=180)
        frame = make_frame(ROWS, seed=7)
        data = parquet_bytes(frame)
        job_id = _submit(api.url, data)
        seen = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            seen = _job(api.url, job_id)
            if seen["status"] == "running" and (seen["rows_done"] or 0) > 0:
                break
            assert seen["status"] in ("queued", "running"), seen
            time.sleep(0.02)
        api.proc.send_signal(signal.SIGKILL)  # mid-job: no shutdown hook runs
        api.proc.wait(timeout=30)
        assert seen["status"] == "running" and 0 < seen["rows_done"] < ROWS, seen
    finally:
        api.stop()

    restarted = UvicornProcess(_env(tmp_path), tmp_path / "uvicorn-2.log")
    try:
        restarted.wait_ready(timeout=180)
        job, resumed = _result(restarted.url, job_id)
        assert job["attempts"] == 2 and job["rows_done"] == ROWS, job
        assert "was interrupted by a restart; re-queued" in restarted.log()
        clean_id = _submit(restarted.url, data)  # the same file, never interrupted
        clean_job, clean = _result(restarted.url, clean_id)
        assert clean_job["attempts"] == 1
    finally:
        restarted.stop()
    assert resumed == clean
    scored = read_csv_reply(resumed)
    assert len(scored) == ROWS
    assert scored["station_id"].tolist() == frame["station_id"].tolist()
    np.testing.assert_allclose(scored["anomaly_score"], expected(frame), rtol=1e-4, atol=1e-4)
