import datetime as dt

import numpy as np
import pytest

from anomalyops.sources.simulator import SimulatorConfig, corrupt, simulate_day
from anomalyops.spec import load_spec
from tests.helpers.common import REPO_ROOT

SPEC = load_spec(REPO_ROOT / "config" / "feature_spec.yaml")
DAY = dt.date(2026, 11, 10)
DRIFT = dt.date(2026, 11, 8)


def test_columns_follow_the_spec_and_stay_in_range():
    df = simulate_day(SPEC, DAY, SimulatorConfig(rows_per_day=1440))
    assert list(df.columns) == SPEC.all_columns
    assert len(df) == 1440
    assert df[SPEC.timestamp.column].dt.date.eq(DAY).all()
    assert df[SPEC.timestamp.column].is_unique
    for f in SPEC.features:
        assert df[f.name].between(f.min, f.max).all(), f.name
    assert not df.isna().any().any()


def test_deterministic_for_date_and_seed():
    cfg = SimulatorConfig(rows_per_day=500, seed=7)
    a, b = simulate_day(SPEC, DAY, cfg), simulate_day(SPEC, DAY, cfg)
    assert a.equals(b)
    assert not a.equals(simulate_day(SPEC, DAY, SimulatorConfig(rows_per_day=500, seed=8)))
    assert not a.equals(simulate_day(SPEC, DAY + dt.timedelta(days=1), cfg))


def test_sensors_are_correlated_and_anomalies_labelled():
    df = simulate_day(SPEC, DAY, SimulatorConfig(rows_per_day=2880, anomaly_rate=0.02))
    corr = df[SPEC.feature_names].corr().abs().to_numpy()
    off_diag = corr[~np.eye(len(corr), dtype=bool)]
    assert (off_diag > 0.5).sum() >= 4, "sensors should share latent factors"
    assert 0.015 <= df[SPEC.label_column].mean() <= 0.03


def _mean_shift(scenario: str, day: dt.date) -> float:
    """Largest mean shift of any feature, in units of the no-drift day's std."""
    base = simulate_day(SPEC, day, SimulatorConfig(rows_per_day=1440, anomaly_rate=0))
    other = simulate_day(
        SPEC,
        day,
        SimulatorConfig(rows_per_day=1440, anomaly_rate=0, scenario=scenario, drift_start=DRIFT),
    )
    cols = SPEC.feature_names
    return float(((other[cols].mean() - base[cols].mean()).abs() / base[cols].std()).max())


def test_drift_scenarios():
    before = DRIFT - dt.timedelta(days=1)
    assert _mean_shift("sudden", before) == 0.0
    assert _mean_shift("gradual", before) == 0.0
    assert _mean_shift("sudden", DRIFT) > 1.0  # a step on the first day
    assert _mean_shift("sudden", DRIFT + dt.timedelta(days=10)) == pytest.approx(
        _mean_shift("sudden", DRIFT), rel=0.5
    )
    g1, g10 = _mean_shift("gradual", DRIFT), _mean_shift("gradual", DRIFT + dt.timedelta(days=10))
    assert g1 < 0.5 < g10  # grows day by day


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="drift_start"):
        SimulatorConfig(scenario="sudden")
    with pytest.raises(ValueError, match="unknown drift scenario"):
        SimulatorConfig(scenario="sideways")
    with pytest.raises(ValueError, match="rows_per_day"):
        SimulatorConfig(rows_per_day=0)


@pytest.mark.parametrize(
    "kind", ["missing_column", "nulls", "out_of_range", "type_change", "empty"]
)
def test_corruptions_break_the_day(kind):
    df = simulate_day(SPEC, DAY, SimulatorConfig(rows_per_day=100))
    bad = corrupt(df, SPEC, kind)
    assert not bad.equals(df)
    assert df.equals(simulate_day(SPEC, DAY, SimulatorConfig(rows_per_day=100))), "input untouched"


def test_max_event_share_splits_a_days_anomalies_into_several_events():
    def events(share: float) -> int:
        cfg = SimulatorConfig(rows_per_day=1440, anomaly_rate=0.03, max_event_share=share)
        labels = simulate_day(SPEC, DAY, cfg)[SPEC.label_column].to_numpy()
        return int((np.diff(np.concatenate([[0], labels])) == 1).sum()), int(labels.sum())

    few, budget = events(1.0)
    many, same_budget = events(0.2)
    assert same_budget == budget == round(0.03 * 1440)
    assert many >= 5 and many > few
    with pytest.raises(ValueError, match="max_event_share"):
        SimulatorConfig(max_event_share=0)


def test_more_rows_than_seconds_keep_the_key_unique():
    """100k rows a day (> 86,400 s): the gate's (entity, timestamp) uniqueness must hold."""
    df = simulate_day(SPEC, dt.date(2026, 10, 1), SimulatorConfig(rows_per_day=100_000))
    ts = df[SPEC.timestamp.column]
    assert ts.is_unique and ts.is_monotonic_increasing
    assert (ts.dt.date == dt.date(2026, 10, 1)).all()
    # At most one row a second, whole seconds as before.
    small = simulate_day(SPEC, dt.date(2026, 10, 1), SimulatorConfig(rows_per_day=1440))
    assert (small[SPEC.timestamp.column].dt.microsecond == 0).all()
    with pytest.raises(ValueError, match="rows_per_day must be in"):
        SimulatorConfig(rows_per_day=86_400_001)
