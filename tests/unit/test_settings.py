"""Settings come from the environment; bad values are named."""

from __future__ import annotations

import pydantic
import pytest

from anomalyops.settings import Settings


def test_nested_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("ANOMALYOPS_TRAINING__WINDOW_DAYS", "7")
    monkeypatch.setenv("ANOMALYOPS_TRAINING__WINDOW_RESTART_DRIFT_SCORE", "0.8")
    t = Settings().training
    assert (t.window_days, t.window_restart_drift_score) == (7, 0.8)


def test_null_unsets_an_optional_setting(monkeypatch):
    assert Settings().training.window_restart_drift_score == 0.5
    monkeypatch.setenv("ANOMALYOPS_TRAINING__WINDOW_RESTART_DRIFT_SCORE", "null")
    assert Settings().training.window_restart_drift_score is None


def test_a_bad_value_names_the_setting(monkeypatch):
    monkeypatch.setenv("ANOMALYOPS_TRAINING__WINDOW_RESTART_DRIFT_SCORE", "high")
    with pytest.raises(pydantic.ValidationError, match="window_restart_drift_score"):
        Settings()


def test_stale_rate_must_exceed_what_the_threshold_promises(monkeypatch):
    monkeypatch.setenv("ANOMALYOPS_TRAINING__STALE_FALSE_ALARM_RATE", "0.005")
    with pytest.raises(pydantic.ValidationError, match="stale_false_alarm_rate"):
        Settings()
    monkeypatch.setenv("ANOMALYOPS_TRAINING__STALE_FALSE_ALARM_RATE", "null")
    assert Settings().training.stale_false_alarm_rate is None
