"""The gate's policy as a plain function: every combination of findings and drift policy."""

import pytest

from anomalyops.validation.quality_gate import FAIL, PASS, WARN, judge_day

EXPECTATION = {
    "expectation": "expect_column_values_to_not_be_null",
    "column": "a",
    "observed": "3 of 10",
}
ANOMALY = {"feature": "a", "short_description": "Column dropped"}


def drift(feature: str, value: float, threshold: float = 0.2) -> dict:
    return {
        "feature": feature,
        "comparator": "jensen_shannon_divergence",
        "value": value,
        "threshold": threshold,
        "drifted": value > threshold,
    }


def test_clean_day_passes():
    assert judge_day([], [], [drift("a", 0.05)]) == judge_day([], [], [])
    assert judge_day([], [], []).verdict == PASS and judge_day([], [], []).reasons == []


@pytest.mark.parametrize(
    "failed,anomalies", [([EXPECTATION], []), ([], [ANOMALY]), ([EXPECTATION], [ANOMALY])]
)
@pytest.mark.parametrize("policy", ["warn", "block"])
def test_invalid_data_fails_whatever_the_drift_policy(failed, anomalies, policy):
    d = judge_day(failed, anomalies, [drift("b", 0.5)], policy)
    assert d.verdict == FAIL
    assert len(d.reasons) == len(failed) + len(anomalies) + 1
    if failed:
        assert "expect_column_values_to_not_be_null on a: 3 of 10" in d.reasons[0]
    if anomalies:
        assert any("TFDV anomaly on a: Column dropped" in r for r in d.reasons)


def test_drift_warns_by_default_and_blocks_when_told():
    scores = [drift("a", 0.31), drift("b", 0.1)]
    warned = judge_day([], [], scores)
    assert warned.verdict == WARN
    assert warned.reasons == ["drift on a: jensen_shannon_divergence 0.310 > 0.200 (warn)"]
    blocked = judge_day([], [], scores, "block")
    assert blocked.verdict == FAIL and blocked.reasons[0].endswith("(block)")


def test_policy_per_check():
    scores = [drift("a", 0.31), drift("b", 0.4)]
    assert judge_day([], [], scores, {"a": "warn", "b": "warn"}).verdict == WARN
    d = judge_day([], [], scores, {"b": "block"})  # a falls back to warn
    assert d.verdict == FAIL
    assert d.reasons == [
        "drift on b: jensen_shannon_divergence 0.400 > 0.200 (block)",
        "drift on a: jensen_shannon_divergence 0.310 > 0.200 (warn)",
    ]
    assert judge_day([], [], [drift("a", 0.31), drift("b", 0.1)], {"b": "block"}).verdict == WARN


def test_score_equal_to_threshold_is_not_drift():
    assert judge_day([], [], [drift("a", 0.2)], "block").verdict == PASS


def test_calibrated_drift_reads_as_statistic_critical_value_and_p_value():
    calibrated = {
        "feature": "a",
        "comparator": "ks_2samp",
        "value": 0.41,
        "threshold": 0.08,
        "p_value": 2.5e-7,
        "alpha": 0.01,
        "drifted": True,
    }
    chi2 = {**calibrated, "feature": "station", "comparator": "chi2_contingency"}
    chi2["threshold"] = None
    d = judge_day([], [], [calibrated, chi2])
    assert d.verdict == WARN
    assert d.reasons == [
        "drift on a: ks_2samp 0.410 (critical 0.080), p=2.5e-07 < 0.01 (warn)",
        "drift on station: chi2_contingency 0.410, p=2.5e-07 < 0.01 (warn)",
    ]
