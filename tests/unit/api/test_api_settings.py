"""ApiSettings: env parsing and the production guard rails."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from anomalyops_api.settings import ApiSettings

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


def test_limits_have_defaults_and_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    s = ApiSettings()
    assert s.max_rows == 20_000_000 and s.min_free_disk_bytes == 1024 * 1024 * 1024
    assert s.csv_escape_formulas and s.max_concurrent_uploads == 16
    monkeypatch.setenv("ANOMALYOPS_API_MAX_ROWS", "10")
    monkeypatch.setenv("ANOMALYOPS_API_MAX_SCORE_SECONDS", "2.5")
    monkeypatch.setenv("ANOMALYOPS_API_CSV_ESCAPE_FORMULAS", "false")
    s = ApiSettings()
    assert s.max_rows == 10 and s.max_score_seconds == 2.5 and not s.csv_escape_formulas
    monkeypatch.setenv("ANOMALYOPS_API_MAX_ROWS", "0")
    with pytest.raises(ValidationError, match="max_rows"):
        ApiSettings()


def test_docs_follow_the_environment_unless_set() -> None:
    assert ApiSettings().docs_on
    production = {"environment": "production", "keys": STRONG, "admin_key": ADMIN}
    assert not ApiSettings(**production).docs_on
    assert ApiSettings(**production, docs_enabled=True).docs_on
    assert not ApiSettings(docs_enabled=False).docs_on


def test_the_api_image_starts_in_production_mode() -> None:
    from anomalyops.settings import PROJECT_ROOT

    dockerfile = (PROJECT_ROOT / "docker" / "api" / "Dockerfile").read_text()
    assert "ANOMALYOPS_API_ENVIRONMENT=production" in dockerfile
