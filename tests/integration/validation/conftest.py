"""Fixtures for the gate's integration tests: a private GX context, a real SMTP sink, a spec."""

from __future__ import annotations

import pytest

from tests.helpers.common import REPO_ROOT, point_smtp_at


@pytest.fixture
def gate_env(settings_env, monkeypatch, tmp_path, gx_copy, mail_sink):
    """settings_env + the gate's paths + SMTP (Airflow's [smtp] derived from ours).

    The spec is the repo's, drift settings are the defaults: with one reference day only a
    KS statistic of 0.7 counts, which the simulator's sudden drift reaches and its ordinary
    day-to-day variation rarely does (docs/validation.md, "Drift").
    """
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text((REPO_ROOT / "config" / "feature_spec.yaml").read_text())
    monkeypatch.setenv("ANOMALYOPS_FEATURE_SPEC_PATH", str(spec_path))
    monkeypatch.setenv("ANOMALYOPS_VALIDATION__GX_ROOT", str(gx_copy))
    monkeypatch.setenv("ANOMALYOPS_SIMULATOR__ROWS_PER_DAY", "1440")
    monkeypatch.setenv("ANOMALYOPS_ALERT_EMAILS", '["ops@example.test", "oncall@example.test"]')
    point_smtp_at(monkeypatch, mail_sink.port)
    settings_env.cache_clear()
    return settings_env
