"""Test-wide set-up: an isolated Airflow home and lake per session, before Airflow is imported."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="anomalyops-tests-"))
# Airflow reads its configuration when first imported, so this must run at collection time.
os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
from anomalyops.airflow_env import airflow_env  # noqa: E402

os.environ.update(airflow_env(_SESSION_DIR / "airflow"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite Airflow metadata DB for this test session."""
    from airflow.utils import db

    db.initdb(load_connections=False)
    return Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture
def settings_env(tmp_path, monkeypatch):
    """Point every path setting at a fresh temp dir; returns a function giving the Settings."""
    from anomalyops.settings import get_settings

    monkeypatch.setenv("ANOMALYOPS_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("ANOMALYOPS_PIPELINE_ROOT", str(tmp_path / "tfx"))
    monkeypatch.setenv("ANOMALYOPS_SERVING_MODEL_DIR", str(tmp_path / "serving"))
    monkeypatch.setenv("ANOMALYOPS_SIMULATOR__ROWS_PER_DAY", "288")
    get_settings.cache_clear()
    yield get_settings
    get_settings.cache_clear()
