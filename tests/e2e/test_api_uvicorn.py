"""The scoring service as deployed: a real uvicorn process on 127.0.0.1, real sockets.

One server for the module (TensorFlow takes ~15 s to import on 2 cores). The hot-reload
test drives a bounded concurrent load (4 loopback clients, at most 30 s) through several
version swaps and checks that no request fails and every reply comes whole from one version.
"""

from __future__ import annotations

import threading
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
    csv_bytes,
    expected,
    make_frame,
    publish,
    publish_corrupt,
    read_csv_reply,
)

MAX_UPLOAD = 3_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UvicornProcess, Path]]:
    root = tmp_path_factory.mktemp("uvicorn")
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
            "ANOMALYOPS_API_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        },
        root / "uvicorn.log",
    )
    try:
        # Started on an empty serving dir, so its TensorFlow import overlaps ours; then the
        # first push is picked up by the watcher. Version N answers N x the base score.
        publish(serving, 1, scale=1.0)
        proc.wait_ready()
        yield proc, serving
    finally:
        proc.stop()
    # uvicorn re-raises SIGTERM after a graceful shutdown, hence -15 rather than 0.
    assert proc.proc.returncode in (0, -15), proc.log()
    assert "Application shutdown complete" in proc.log(), proc.log()
    assert "Traceback" not in proc.log(), proc.log()


def post(client: httpx.Client, data: bytes, **kw) -> httpx.Response:
    return client.post(
        "/v1/score", files={"file": ("d.csv", data, "text/csv")}, headers={"X-API-Key": KEY}, **kw
    )


def test_production_mode_refuses_to_start_without_keys(tmp_path: Path) -> None:
    proc = UvicornProcess(
        {"ANOMALYOPS_API_ENVIRONMENT": "production", "ANOMALYOPS_API_MODEL_DIR": str(tmp_path)},
        tmp_path / "log",
    )
    try:
        assert proc.proc.wait(timeout=60) != 0
    finally:
        proc.stop()
    assert "ANOMALYOPS_API_KEYS must be set in production" in proc.log()


def test_score_413_and_auth_over_real_http(server) -> None:
    proc, _ = server
    frame = make_frame(2000)
    with httpx.Client(base_url=proc.url, timeout=30) as client:
        r = post(client, csv_bytes(frame))
        assert r.status_code == 200, r.text
        assert r.headers["x-model-version"] == "1"
        np.testing.assert_allclose(
            read_csv_reply(r.content)["anomaly_score"], expected(frame), rtol=1e-5
        )
        big = csv_bytes(make_frame(60_000))
        assert len(big) > MAX_UPLOAD
        r = post(client, big)
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        r = client.post("/v1/score", files={"file": ("d.csv", b"a\n1\n", "text/csv")})
        assert r.status_code == 401
        assert client.get("/readyz").json()["model_version"] == 1


def test_hot_reload_under_concurrent_load(server) -> None:
    proc, serving = server
    frame = make_frame(300, seed=11)
    base = expected(frame)
    data = csv_bytes(frame)
    stop = threading.Event()
    replies: list[tuple[int, int]] = []  # (status, version) per request
    problems: list[str] = []
    lock = threading.Lock()

    def client_loop() -> None:
        with httpx.Client(base_url=proc.url, timeout=30) as client:
            for _ in range(400):  # bounded count per client
                if stop.is_set():
                    return
                try:
                    r = post(client, data)
                except httpx.HTTPError as exc:
                    with lock:
                        problems.append(f"transport error: {exc!r}")
                    continue
                version = int(r.headers.get("x-model-version", -1))
                with lock:
                    replies.append((r.status_code, version))
                if r.status_code != 200:
                    with lock:
                        problems.append(f"HTTP {r.status_code}: {r.text[:200]}")
                    continue
                reply = read_csv_reply(r.content)
                # Whole-version answer: every row from the version the header names.
                if set(reply["model_version"]) != {version}:
                    problems.append(f"mixed versions {set(reply['model_version'])}")
                if not np.allclose(reply["anomaly_score"], base * version, rtol=1e-5):
                    problems.append(f"scores of v{version} do not match scale {version}")

    threads = [threading.Thread(target=client_loop) for _ in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    admin = httpx.Client(base_url=proc.url, headers={"X-API-Key": ADMIN_KEY}, timeout=30)

    def wait_served(version: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if admin.get("/readyz").json()["model_version"] == version:
                return
            time.sleep(0.05)
        raise AssertionError(f"v{version} not served within {timeout} s")

    try:
        time.sleep(1.0)
        publish(serving, 2, scale=2.0)  # picked up by polling
        wait_served(2, timeout=10)
        time.sleep(0.5)
        publish(serving, 3, scale=3.0)  # the pipeline's path: push, then POST /admin/reload
        assert admin.post("/admin/reload").json()["model_version"] == 3
        time.sleep(0.5)
        publish_corrupt(serving, 4)
        body = admin.post("/admin/reload").json()
        assert body["model_version"] == 3 and body["failed_versions"][0]["version"] == 4
        time.sleep(0.5)
        publish(serving, 5, scale=5.0)
        wait_served(5, timeout=10)
        time.sleep(0.5)
        assert admin.post("/admin/pin", json={"version": 2}).json()["model_version"] == 2
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        admin.close()
    assert time.monotonic() - started < 60
    assert problems == []
    statuses = {s for s, _ in replies}
    seen = {v for _, v in replies}
    assert statuses == {200}
    assert {1, 2, 3, 5} <= seen and 4 not in seen
    assert len(replies) >= 40
    metrics = httpx.get(f"{proc.url}/metrics").text
    failures = next(
        line
        for line in metrics.splitlines()
        if line.startswith("anomalyops_api_model_reload_failures_total ")
    )
    assert float(failures.split()[1]) >= 1  # v4 (the poller may have tried it first)
    assert "anomalyops_api_model_version 2.0" in metrics
