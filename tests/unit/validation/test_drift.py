"""The calibrated drift score: significance at the day's size, calibrated on the reference days."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from anomalyops.validation import drift as dft
from anomalyops.validation.drift import DriftConfig, drift_scores


def days(n_days: int, rows: int, *, seed: int = 0, shift: float = 0.0, day_sd: float = 0.0):
    """``n_days`` frames of one normal feature ``x``; each day offset by N(0, day_sd)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_days):
        offset = rng.normal(0.0, day_sd) if day_sd else 0.0
        out.append(pd.DataFrame({"x": rng.normal(shift + offset, 1.0, rows)}))
    return out


def grid(rows: int, shift: float = 0.0) -> pd.DataFrame:
    """A noise-free sample of N(shift, 1): its quantiles at (i + 0.5) / rows."""
    return pd.DataFrame({"x": stats.norm.ppf((np.arange(rows) + 0.5) / rows) + shift})


def warned(scores) -> bool:
    return any(s["drifted"] for s in scores)


def test_ks_statistic_matches_scipy_with_ties():
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 5, 300).astype(float), rng.integers(0, 6, 500).astype(float)
    assert dft.ks_statistic(x, y) == pytest.approx(stats.ks_2samp(x, y).statistic)


def test_identical_distributions_do_not_warn():
    same = drift_scores(grid(500), [grid(500)] * 7, ["x"], cfg=DriftConfig(residual_test=False))
    assert [s["comparator"] for s in same] == [dft.KS]
    assert same[0]["value"] == 0.0 and same[0]["p_value"] == 1.0 and not warned(same)
    # Two samples of one distribution: sampling noise only.
    ref = days(7, 500, seed=2)
    (today,) = days(1, 500, seed=3)
    scores = drift_scores(today, ref, ["x"], cfg=DriftConfig(residual_test=False))
    assert not warned(scores)
    assert scores[0]["p_value"] > 0.01 and scores[0]["between_days"] == pytest.approx(0, abs=0.5)


def test_a_shifted_day_warns_and_a_separated_one_restarts():
    ref = days(7, 500, seed=4)
    (small,) = days(1, 500, seed=5, shift=0.5)
    scores = drift_scores(small, ref, ["x"], cfg=DriftConfig(residual_test=False))
    assert warned(scores) and not dft.day_restarts(scores)
    assert scores[0]["value"] > scores[0]["threshold"]
    (big,) = days(1, 500, seed=5, shift=3.5)
    scores = drift_scores(big, ref, ["x"], cfg=DriftConfig(residual_test=False))
    assert warned(scores) and dft.day_restarts(scores)
    assert (
        dft.restart_score(scores) == pytest.approx(scores[0]["value"]) and scores[0]["value"] > 0.9
    )


def test_the_critical_value_follows_the_sample_size():
    cfg = DriftConfig(residual_test=False)
    # The same real shift (0.15 sd, KS distance 0.06): within noise at 200 rows a day,
    # evidence at 20,000.
    small = drift_scores(grid(200, 0.15), [grid(200)] * 7, ["x"], cfg=cfg)[0]
    large = drift_scores(grid(20_000, 0.15), [grid(20_000)] * 7, ["x"], cfg=cfg)[0]
    assert small["value"] == pytest.approx(large["value"], abs=0.005)
    assert not small["drifted"] and large["drifted"]
    assert small["threshold"] > 3 * large["threshold"]
    # At i.i.d. sizes the critical value is the textbook one, Bonferroni included.
    n, m = large["rows"], large["reference_rows"]
    textbook = special.kolmogi(0.01) * math.sqrt((n + m) / (n * m))
    assert large["threshold"] == pytest.approx(textbook, rel=0.05)


def test_day_to_day_variation_is_calibrated_away_but_a_real_step_is_not():
    cfg = DriftConfig(residual_test=False)
    # Whole days wander (sd 0.5): an i.i.d. KS test would flag most days at 1,440 rows.
    history = days(8, 1440, seed=8, day_sd=0.5)
    ordinary = drift_scores(history[7], history[:7], ["x"], cfg=cfg)[0]
    assert ordinary["between_days"] > 10 and not ordinary["drifted"]
    iid_p = special.kolmogorov(math.sqrt(ordinary["value"] ** 2 * 1440 * 7 / 8))
    assert ordinary["value"] > 0.1 and iid_p < 1e-6  # what the uncalibrated test would say
    step = history[7].assign(x=history[7]["x"] + 4.0)
    shifted = drift_scores(step, history[:7], ["x"], cfg=cfg)[0]
    assert shifted["drifted"] and shifted["restart"]


def test_too_few_reference_days_only_a_large_shift_counts():
    cfg = DriftConfig(residual_test=False, min_calibration_days=3)
    ref = days(2, 1000, seed=9)
    (moderate,) = days(1, 1000, seed=10, shift=0.4)
    scores = drift_scores(moderate, ref, ["x"], cfg=cfg)[0]
    assert scores["p_value"] < 1e-6 and not scores["drifted"]  # significant, but uncalibrated
    assert scores["calibration_days"] == 0 and scores["min_effect"] == 0.7
    (huge,) = days(1, 1000, seed=10, shift=4.0)
    scores = drift_scores(huge, ref, ["x"], cfg=cfg)[0]
    assert scores["drifted"] and not scores["restart"]  # no restart before calibration


def test_the_residual_test_sees_a_sensor_leaving_its_partner():
    rng = np.random.default_rng(11)

    def day(offset_y: float = 0.0):
        load = rng.normal(rng.normal(0, 1.0), 1.0, 1000)  # the shared cause wanders by day
        return pd.DataFrame(
            {"x": load + rng.normal(0, 0.2, 1000), "y": load + rng.normal(offset_y, 0.2, 1000)}
        )

    ref = [day() for _ in range(7)]
    ordinary = drift_scores(day(), ref, ["x", "y"])
    assert not warned(ordinary)
    leaving = drift_scores(day(offset_y=0.3), ref, ["x", "y"])
    flagged = {(s["feature"], s["comparator"]) for s in leaving if s["drifted"]}
    assert (("y", dft.KS_RESIDUAL) in flagged) and (("y", dft.KS) not in flagged)
    assert not dft.day_restarts(leaving)


def test_min_effect_ignores_small_significant_shifts():
    ref = days(7, 5000, seed=12)
    (today,) = days(1, 5000, seed=13, shift=0.2)
    cfg = DriftConfig(residual_test=False)
    assert warned(drift_scores(today, ref, ["x"], cfg=cfg))
    assert not warned(drift_scores(today, ref, ["x"], min_effect={"x": 0.3}, cfg=cfg))


def test_categorical_mix_and_bad_columns():
    rng = np.random.default_rng(14)

    def day(p_b: float, n: int = 1000):
        return pd.DataFrame(
            {"x": rng.normal(size=n), "station": np.where(rng.random(n) < p_b, "b", "a")}
        )

    ref = [day(0.5) for _ in range(5)]
    same = drift_scores(day(0.5), ref, ["x"], categorical=["station"])
    assert not warned(same)
    moved = drift_scores(day(0.9), ref, ["x"], categorical=["station"])
    chi = next(s for s in moved if s["comparator"] == dft.CHI2)
    assert chi["drifted"] and chi["value"] == pytest.approx(0.4, abs=0.05)
    # A dropped or non-numeric column is left to the other checks, not a crash.
    broken = day(0.5).drop(columns=["x"])
    assert [s["feature"] for s in drift_scores(broken, ref, ["x"], categorical=["station"])] == [
        "station"
    ]
    texty = day(0.5).assign(x="12.5 units")
    assert drift_scores(texty, ref, ["x"]) == []


def test_p_value_mixture_reduces_to_kolmogorov_and_grows_with_day_variation():
    assert dft.ks_p_value(0.1, 400.0) == pytest.approx(special.kolmogorov(2.0))
    p = [dft.ks_p_value(0.2, 1000.0, b, 7) for b in (0.0, 1.0, 5.0, 40.0)]
    assert p == sorted(p) and p[0] < 1e-15 and p[-1] > 0.05
    # More reference days to estimate the between-day component: narrower margins.
    assert dft.ks_p_value(0.2, 1000.0, 5.0, 20) < dft.ks_p_value(0.2, 1000.0, 5.0, 3)
    assert dft.location_scale(0.01) == pytest.approx(0.01, rel=1e-3)
    assert dft.location_scale(0.95) > 1.5  # saturating D stretched back to a location shift


def test_reference_days_stop_at_the_newest_regime_start():
    assert dft.reference_days([False] * 10, 7) == [3, 4, 5, 6, 7, 8, 9]
    assert dft.reference_days([False, True, False, False], 7) == [1, 2, 3]
    assert dft.reference_days([True, False, True, False], 2) == [2, 3]
    assert dft.reference_days([True, False, False, False], 2) == [2, 3]  # out of range
    assert dft.reference_days([], 7) == []
    with pytest.raises(ValueError, match="max_days"):
        dft.reference_days([False], 0)
