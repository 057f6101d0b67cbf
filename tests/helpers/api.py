"""Helpers and fixtures for the scoring API's tests (unit, integration, e2e).

Models come from :mod:`anomalyops_api.demo_model`: the contract's signature, a score that is
``scale * mean(((x - mean) / std) ** 2)``, so a test can compute every expected score and
tell which version answered. ``numpy_model`` is the same maths without TensorFlow, for unit
tests of everything around the model.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomalyops.settings import PROJECT_ROOT
from anomalyops.spec import FeatureSpec, load_spec

SPEC: FeatureSpec = load_spec(PROJECT_ROOT / "config" / "feature_spec.yaml")
FEATURES = SPEC.feature_names
KEYS = SPEC.key_columns  # ["station_id", "timestamp"]


def make_frame(rows: int, *, seed: int = 0, start_minute: int = 0) -> pd.DataFrame:
    """Plausible rows for the demo spec: key columns, every feature, and a label column."""
    rng = np.random.default_rng(seed)
    minutes = np.arange(start_minute, start_minute + rows)
    frame = pd.DataFrame(
        {
            "station_id": [f"st-{i % 3:03d}" for i in range(rows)],
            "timestamp": [f"2026-11-27T{(m // 60) % 24:02d}:{m % 60:02d}:00" for m in minutes],
        }
    )
    for feature in SPEC.features:
        low, high = feature.min, feature.max
        frame[feature.name] = np.round(rng.uniform(low, high, rows), 3)
    frame["is_anomaly"] = rng.integers(0, 2, rows)
    return frame


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def expected(frame: pd.DataFrame, *, scale: float = 1.0) -> np.ndarray:
    from anomalyops_api.demo_model import expected_scores

    return expected_scores(SPEC, {n: frame[n].to_numpy() for n in FEATURES}, scale=scale)


def read_csv_reply(body: bytes) -> pd.DataFrame:
    # Keys as text: the service echoes them verbatim.
    return pd.read_csv(io.BytesIO(body), dtype={"station_id": str, "timestamp": str})


# -- models ----------------------------------------------------------------------------------


def numpy_model(
    version: int = 1, *, scale: float = 1.0, threshold: float = 3.0, explains: bool = True
):
    """A LoadedModel whose 'graph' is numpy: the demo model's maths, no TensorFlow."""
    import datetime as dt

    from anomalyops_api.demo_model import expected_contributions, expected_scores, metadata
    from anomalyops_api.model import EXPLANATION_OUTPUT, LoadedModel, ModelMetadata

    def predict(**features: np.ndarray) -> dict[str, np.ndarray]:
        scores = expected_scores(SPEC, features, scale=scale)
        out = {
            "anomaly_score": scores,
            "threshold": np.full(len(scores), threshold, np.float32),
            "is_anomaly": scores > threshold,
        }
        if explains:
            out[EXPLANATION_OUTPUT] = expected_contributions(SPEC, features, scale=scale)
        return out

    return LoadedModel(
        version=version,
        path=Path(f"/nonexistent/{version}"),
        metadata=ModelMetadata.model_validate(metadata(SPEC, version, threshold=threshold)),
        spec=SPEC,
        loaded_at=dt.datetime.now(dt.timezone.utc),
        load_seconds=0.0,
        _predict=predict,
        explains=explains,
    )


def publish(model_dir: Path, version: int, *, scale: float = 1.0, threshold: float = 3.0) -> Path:
    """A complete version, built and renamed into place like the Pusher does."""
    from anomalyops_api.demo_model import write_version

    return write_version(model_dir, version, SPEC, scale=scale, threshold=threshold)


def publish_partial(model_dir: Path, version: int, *, scale: float = 1.0) -> tuple[Path, Path]:
    """A version directory missing saved_model.pb (a copy in progress); returns
    (version_dir, the held-back saved_model.pb) so the test can complete it."""
    staging = Path(model_dir).parent / f"staging-{version}"  # outside the serving dir
    built = publish(staging, version, scale=scale, threshold=3.0 * scale)
    held = staging / "saved_model.pb"
    shutil.move(str(built / "saved_model.pb"), held)
    final = Path(model_dir) / str(version)
    shutil.move(str(built), final)
    return final, held


def publish_corrupt(model_dir: Path, version: int) -> Path:
    """Complete by the contract's file check, but saved_model.pb is garbage."""
    path = Path(model_dir) / str(version)
    (path / "variables").mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"this is not a protobuf")
    (path / "variables" / "variables.index").write_bytes(b"\x00" * 16)
    from anomalyops_api.demo_model import metadata

    (path / "anomalyops_model.json").write_text(json.dumps(metadata(SPEC, version, threshold=3.0)))
    return path


# -- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UvicornProcess:
    """``uvicorn anomalyops_api.main:create_app --factory`` on 127.0.0.1:<free port>."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "anomalyops_api.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "info",
            ],
            env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"} | env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"not ready after {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    path = tmp_path / "serving"
    path.mkdir()
    return path


# -- app settings ----------------------------------------------------------------------------

KEY = "scoring-key-for-tests-0001"
OTHER_KEY = "scoring-key-for-tests-0002"
ADMIN_KEY = "admin-key-for-tests-000001"


def api_settings(root: Path, **overrides):
    """ApiSettings rooted in ``root`` (serving/, state/), polling fast unless overridden."""
    from anomalyops_api.settings import ApiSettings

    values = {
        "model_dir": root / "serving",
        "state_dir": root / "state",
        "spool_dir": root,
        "poll_interval_s": 0.1,
        "load_retry_backoff_s": 60.0,
        "warmup_rows": 64,
    } | overrides
    return ApiSettings(**values)


def upload(
    client,
    data: bytes,
    *,
    name: str = "data.csv",
    content_type: str = "text/csv",
    key: str | None = KEY,
    path: str = "/v1/score",
    **kw,
):
    headers = kw.pop("headers", {})
    if key is not None:
        headers["X-API-Key"] = key
    return client.post(path, files={"file": (name, data, content_type)}, headers=headers, **kw)


def submit(client, data: bytes, **kw):
    return upload(client, data, path="/v1/jobs", **kw)


def wait_done(client, job_id: str, timeout: float = 30, key: str = KEY) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": key}).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")
