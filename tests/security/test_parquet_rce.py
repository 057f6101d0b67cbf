"""CVE-2023-47248 over HTTP: a pickle-bearing Parquet upload to ``/v1/score`` and ``/v1/jobs``.

The service runs as deployed (a real uvicorn process, which imports only what the app
imports), so the test proves the API installs pyarrow_hotfix itself. Each upload must get a
4xx naming the refusal, the embedded ``touch MARKER`` must never run, and the server must stay
healthy: ``/readyz`` 200 and a normal Parquet upload still scores.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
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
    publish,
    read_csv_reply,
    upload,
)
from tests.helpers.parquet import write_pickle_parquet

PARQUET = "application/vnd.apache.parquet"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UvicornProcess]:
    root = tmp_path_factory.mktemp("rce")
    serving = root / "serving"
    serving.mkdir()
    proc = UvicornProcess(
        {
            "ANOMALYOPS_API_ENVIRONMENT": "production",
            "ANOMALYOPS_API_MODEL_DIR": str(serving),
            "ANOMALYOPS_API_STATE_DIR": str(root / "state"),
            "ANOMALYOPS_API_SPOOL_DIR": str(root),
            "ANOMALYOPS_API_KEYS": KEY,
            "ANOMALYOPS_API_ADMIN_KEY": ADMIN_KEY,
            "ANOMALYOPS_API_POLL_INTERVAL_S": "0.25",
        },
        root / "uvicorn.log",
    )
    try:
        publish(serving, 1, scale=1.0)
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()
    assert "Traceback" not in proc.log(), proc.log()


def _job_outcome(client: httpx.Client, job_id: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": KEY}).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")


@pytest.mark.parametrize("path", ["/v1/score", "/v1/jobs"])
def test_pickle_bearing_parquet_upload_is_refused_and_nothing_runs(
    server: UvicornProcess, tmp_path: Path, path: str
) -> None:
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.parquet"
    write_pickle_parquet(evil, marker, rows=50)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        t0 = time.monotonic()
        r = upload(client, evil.read_bytes(), name="evil.parquet", content_type=PARQUET, path=path)
        if r.status_code == 202:  # a job may be refused when it runs rather than at submission
            job = _job_outcome(client, r.json()["id"])
            assert job["status"] == "failed", job
            status, detail = job["error_status"], str(job["error"])
        else:
            status, detail = r.status_code, r.json()["detail"]
        elapsed = time.monotonic() - t0

        assert not marker.exists(), "the pickled payload ran in the API process"
        assert 400 <= status < 500, (status, detail)
        assert "CVE-2023-47248" in detail and "extension type" in detail
        assert "os.system" not in detail and "touch" not in detail, "the pickle is not echoed"
        assert elapsed < 5

        # Healthy afterwards: ready, and an ordinary Parquet upload still scores.
        assert client.get("/readyz").status_code == 200
        frame = make_frame(200)
        ok = upload(client, parquet_bytes(frame), name="ok.parquet", content_type=PARQUET)
        assert ok.status_code == 200, ok.text
        np.testing.assert_allclose(
            read_csv_reply(ok.content)["anomaly_score"], expected(frame), rtol=1e-5
        )
    assert not marker.exists()
