"""ApiSettings: env parsing and the production guard rails."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from anomalyops_api.settings import ApiSettings

pytestmark = pytest.mark.unit

STRONG = "k" * 24
ADMIN = "a" * 24


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ANOMALYOPS_API_"):
            monkeypatch.delenv(name)


def test_defaults_are_development_with_open_auth() -> None:
    s = ApiSettings()
    assert s.environment == "development"
    assert s.auth_open and s.admin_open
    assert s.poll_interval_s == 1.0
    assert s.model_dir.parts[-3:] == ("var", "serving", "anomaly_detector")
    assert s.resolved_jobs_dir == s.state_dir / "jobs"


def test_env_overrides_and_comma_separated_keys(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("ANOMALYOPS_API_MODEL_DIR", str(tmp_path / "m"))
    monkeypatch.setenv("ANOMALYOPS_API_KEYS", " one , two,,")
    monkeypatch.setenv("ANOMALYOPS_API_POLL_INTERVAL_S", "0.25")
    monkeypatch.setenv("ANOMALYOPS_API_MAX_UPLOAD_BYTES", "1024")
    s = ApiSettings()
    assert s.model_dir == tmp_path / "m"
    assert [k.get_secret_value() for k in s.keys] == ["one", "two"]
    assert s.poll_interval_s == 0.25 and s.max_upload_bytes == 1024
    assert not s.auth_open


def test_the_pipelines_own_variables_do_not_break_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # anomalyops.settings reads ANOMALYOPS_API_URL; same prefix, must be ignored here.
    monkeypatch.setenv("ANOMALYOPS_API_URL", "http://scoring:8000")
    ApiSettings()


def test_production_refuses_to_start_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANOMALYOPS_API_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="ANOMALYOPS_API_KEYS"):
        ApiSettings()
    monkeypatch.setenv("ANOMALYOPS_API_KEYS", STRONG)
    with pytest.raises(ValidationError, match="ANOMALYOPS_API_ADMIN_KEY"):
        ApiSettings()
    monkeypatch.setenv("ANOMALYOPS_API_ADMIN_KEY", ADMIN)
    s = ApiSettings()
    assert not s.auth_open and not s.admin_open


@pytest.mark.parametrize(
    ("keys", "admin", "message"),
    [("short", ADMIN, "at least 16"), (STRONG, STRONG, "must differ")],
)
def test_production_rejects_weak_or_shared_keys(keys: str, admin: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ApiSettings(environment="production", keys=keys, admin_key=admin)


def test_settings_do_no_io(tmp_path) -> None:
    ApiSettings(state_dir=tmp_path / "state", model_dir=tmp_path / "serving")
    assert list(tmp_path.iterdir()) == []


def test_importing_the_app_does_not_import_tensorflow() -> None:
    code = (
        "import sys, anomalyops_api.main as m; m.create_app(); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
