"""Fixtures for the gate's integration tests: a private GX context, a real SMTP sink, a spec."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import REPO_ROOT, point_smtp_at


@pytest.fixture
def gate_env(settings_env, monkeypatch, tmp_path, gx_copy, mail_sink):
    """settings_env + the gate's paths + SMTP (Airflow's [smtp] derived from ours).

    The spec is the repo's with a drift threshold of 0.3: at 1440 rows/day the simulator's
    ordinary day-to-day JS divergence stays below it for the days used here, and its sudden
    drift exceeds it (docs/validation.md, "Drift thresholds").
    """
    spec = yaml.safe_load((REPO_ROOT / "config" / "feature_spec.yaml").read_text())
    spec["default_drift_threshold"] = 0.3
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("ANOMALYOPS_FEATURE_SPEC_PATH", str(spec_path))
    monkeypatch.setenv("ANOMALYOPS_VALIDATION__GX_ROOT", str(gx_copy))
    monkeypatch.setenv("ANOMALYOPS_SIMULATOR__ROWS_PER_DAY", "1440")
    monkeypatch.setenv("ANOMALYOPS_ALERT_EMAILS", '["ops@example.test", "oncall@example.test"]')
    point_smtp_at(monkeypatch, mail_sink.port)
    settings_env.cache_clear()
    return settings_env
