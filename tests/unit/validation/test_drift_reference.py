"""The gate's reference days in a real lake: the last N validated days, cut at a regime start."""

import datetime as dt
import json

import numpy as np
import pandas as pd

from anomalyops.lake import Lake, Zone
from anomalyops.spec import parse_spec
from anomalyops.validation import quality_gate as g
from anomalyops.validation import report

START = dt.date(2026, 11, 1)
SPEC = parse_spec(
    {
        "name": "s",
        "timestamp": {"column": "ts"},
        "features": [{"name": "a"}, {"name": "b", "drift_threshold": 0.95}],
    }
)


def day(i: int) -> dt.date:
    return START + dt.timedelta(days=i)


def validated(lake: Lake, i: int, *, restart: bool | None = False, shift: float = 0.0):
    rng = np.random.default_rng(i)
    frame = pd.DataFrame({"a": rng.normal(shift, 1, 300), "b": rng.normal(shift, 1, 300)})
    lake.write_table(Zone.VALIDATED, day(i), frame)
    if restart is not None:  # None: a day promoted without a drift record
        record = {"scores": [{"feature": "a", "comparator": "ks_2samp", "restart": restart}]}
        report.write_report(lake, day(i), {report.DRIFT_JSON: json.dumps(record).encode()}, meta={})
    return frame


def test_reference_is_the_last_days_cut_at_the_newest_regime_start(settings_env):
    settings = settings_env()
    lake = Lake(settings.lake_root)
    for i in range(10):
        validated(lake, i, restart=i in (2, 4), shift=3.0 if i >= 4 else 0.0)
    assert g.reference_days(lake, day(10), 7) == [day(i) for i in range(4, 10)]
    assert g.reference_days(lake, day(10), 3) == [day(7), day(8), day(9)]
    assert g.reference_days(lake, day(4), 7) == [day(2), day(3)]  # only earlier days count
    assert g.reference_days(lake, day(0), 7) == []


def test_days_without_a_drift_record_never_start_a_regime(settings_env):
    settings = settings_env()
    lake = Lake(settings.lake_root)
    validated(lake, 0, restart=None)
    validated(lake, 1, restart=None)
    report.write_report(lake, day(1), {report.DRIFT_JSON: b"{broken"}, meta={})
    assert g.reference_days(lake, day(2), 7) == [day(0), day(1)]


def test_gate_scores_carry_the_spec_min_effect_and_tfdv_divergence(settings_env):
    settings = settings_env()
    lake = Lake(settings.lake_root)
    refs = [day(i) for i in range(5)]
    for i in range(5):
        validated(lake, i)
    rng = np.random.default_rng(99)
    today = pd.DataFrame({"a": rng.normal(1.0, 1, 300), "b": rng.normal(1.0, 1, 300)})
    divergences = [{"feature": "a", "comparator": "jensen_shannon_divergence", "value": 0.3}]
    scores = g.drift_scores(today, refs, settings, SPEC, lake, divergences, day(4))
    marginal = {s["feature"]: s for s in scores if s["comparator"] == "ks_2samp"}
    # Both shifted by 1 sd; b's spec override (KS >= 0.95) keeps it from counting as drift.
    assert marginal["a"]["drifted"] and not marginal["b"]["drifted"]
    assert marginal["b"]["p_value"] < 0.01 and marginal["b"]["threshold"] == 0.95
    assert marginal["a"]["divergence"] == {**divergences[0], "baseline": day(4).isoformat()}
    assert marginal["a"]["calibration_days"] == 5 and marginal["a"]["reference_rows"] == 1500
    assert g.drift_scores(today, [], settings, SPEC, lake, divergences, None) == []


def test_a_feature_can_lower_the_spec_wide_minimum_effect_to_zero():
    spec = parse_spec(
        {
            "name": "s",
            "timestamp": {"column": "ts"},
            "default_drift_threshold": 0.3,
            "features": [{"name": "a", "drift_threshold": 0.0}, {"name": "b"}],
        }
    )
    assert (spec.drift_threshold("a"), spec.drift_threshold("b")) == (0.0, 0.3)
    assert SPEC.default_drift_threshold == 0.0  # default: every significant shift counts
