"""Test-wide set-up: an isolated Airflow home and lake per session, before Airflow is imported."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="anomalyops-tests-"))
# Airflow reads its configuration when first imported, so this must run at collection time.
os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
from anomalyops_airflow.env import airflow_env  # noqa: E402

os.environ.update(airflow_env(_SESSION_DIR / "airflow"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tests.helpers.common import REPO_ROOT, free_port  # noqa: E402

ROOMS = ("unit", "dags", "integration", "e2e", "security")


def pytest_collection_modifyitems(items) -> None:
    """The room is the folder: ``tests/<room>/...`` gets the ``<room>`` marker."""
    tests_dir = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(tests_dir).parts
        if len(parts) > 1 and parts[0] in ROOMS:
            item.add_marker(parts[0])


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite Airflow metadata DB for this test session."""
    from airflow.utils import db

    db.initdb()  # no example connections: airflow_env() sets LOAD_DEFAULT_CONNECTIONS=False
    return Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture(scope="session")
def gx_copy(tmp_path_factory) -> Path:
    """The committed GX context, copied so runs never touch the repo's gx/uncommitted/."""
    root = tmp_path_factory.mktemp("gxctx") / "gx"
    shutil.copytree(REPO_ROOT / "gx", root, ignore=shutil.ignore_patterns("uncommitted"))
    return root


@pytest.fixture
def mail_sink(tmp_path):
    """A real SMTP server (aiosmtpd) on a free loopback port, stopped afterwards."""
    from anomalyops_devtools.mail_sink import MailSink

    with MailSink(tmp_path / "mail", "127.0.0.1", free_port()) as sink:
        yield sink


@pytest.fixture
def settings_env(tmp_path, monkeypatch, gx_copy):
    """Point every path setting at a fresh temp dir; returns a function giving the Settings."""
    from anomalyops.settings import get_settings

    monkeypatch.setenv("ANOMALYOPS_VALIDATION__GX_ROOT", str(gx_copy))
    monkeypatch.setenv("ANOMALYOPS_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("ANOMALYOPS_PIPELINE_ROOT", str(tmp_path / "tfx"))
    monkeypatch.setenv("ANOMALYOPS_SERVING_MODEL_DIR", str(tmp_path / "serving"))
    monkeypatch.setenv("ANOMALYOPS_SIMULATOR__ROWS_PER_DAY", "288")
    get_settings.cache_clear()
    yield get_settings
    get_settings.cache_clear()
