"""The evaluation gate's decisions: calibration, metrics, blessing rules (plain numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anomalyops_tfx.components.evaluation_gate import logic


def test_threshold_is_quantile_of_normal_rows_only():
    scores = np.r_[np.arange(100, dtype=float), [1e6, 1e6]]
    labels = np.r_[np.zeros(100), [1, 1]]
    assert logic.calibrate_threshold(scores, labels, 0.5) == pytest.approx(49.5)
    # Without labels the anomalies pull the quantile up.
    assert logic.calibrate_threshold(scores, None, 0.99) > 99


def test_threshold_needs_normal_rows_and_a_valid_quantile():
    with pytest.raises(ValueError, match="no normal"):
        logic.calibrate_threshold(np.ones(3), np.ones(3), 0.9)
    with pytest.raises(ValueError, match="quantile"):
        logic.calibrate_threshold(np.ones(3), None, 1.0)


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_matches_scikit_learn(seed):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    labels = rng.random(300) < 0.1
    scores = rng.normal(size=300) + labels * rng.uniform(0, 3)
    scores[:50] = np.round(scores[:50], 1)  # ties
    assert logic.average_precision(labels, scores) == pytest.approx(
        sklearn_metrics.average_precision_score(labels, scores)
    )


def test_average_precision_edge_cases():
    assert logic.average_precision([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8]) == 1.0
    assert math.isnan(logic.average_precision([0, 0], [0.1, 0.2]))


def test_alarm_metrics_at_threshold():
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    scores = np.array([9, 8, 7, 1, 6, 1, 1, 1, 1, 1], dtype=float)
    m = logic.alarm_metrics(labels, scores, threshold=5)
    assert (m["true_positives"], m["false_positives"], m["false_negatives"]) == (3, 1, 1)
    assert m["false_alarm_rate"] == pytest.approx(1 / 6)
    assert m["missed_alarm_rate"] == pytest.approx(1 / 4)
    assert m["f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))


def _labelled(separation: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(400), np.ones(20)]
    scores = np.abs(rng.normal(size=420)) + labels * separation
    return scores, labels


def test_better_or_equal_candidate_is_blessed_against_baseline():
    good, labels = _labelled(4.0)
    weak, _ = _labelled(0.5, seed=1)
    cand = logic.evaluate(good, labels, 0.99)
    base = logic.evaluate(weak, labels, 0.99)
    decision = logic.decide_blessing(cand, base, margin=0.02, min_rows=10)
    assert decision.blessed and decision.rule == "auc_pr_no_regression"
    assert "AUC-PR" in decision.reasons[0]


def test_regressing_candidate_is_not_blessed():
    good, labels = _labelled(4.0)
    weak, _ = _labelled(0.5, seed=1)
    decision = logic.decide_blessing(
        logic.evaluate(weak, labels, 0.99), logic.evaluate(good, labels, 0.99), margin=0.02
    )
    assert not decision.blessed
    assert "<" in decision.reasons[0]


def test_margin_tolerates_small_regressions():
    good, labels = _labelled(4.0)
    cand = logic.evaluate(good, labels, 0.99)
    base = logic.Evaluation(
        rows=cand.rows,
        threshold=1.0,
        metrics={**cand.metrics, "auc_pr": cand.metrics["auc_pr"] + 0.01},
        labelled=True,
        positives=20,
    )
    assert logic.decide_blessing(cand, base, margin=0.02).blessed
    assert not logic.decide_blessing(cand, base, margin=0.0).blessed


def test_first_model_is_blessed_when_sane():
    scores, labels = _labelled(2.0)
    decision = logic.decide_blessing(
        logic.evaluate(scores, labels, 0.99), None, margin=0.02, min_rows=10
    )
    assert decision.blessed and decision.rule == "sanity"


def test_non_finite_scores_or_too_few_rows_are_never_blessed():
    scores, labels = _labelled(2.0)
    scores[3] = np.nan
    decision = logic.decide_blessing(logic.evaluate(scores, labels, 0.99), None, margin=0.02)
    assert not decision.blessed and "non-finite" in decision.reasons[0]
    few = logic.evaluate(np.ones(5), None, 0.9)
    assert not logic.decide_blessing(few, None, margin=0.02, min_rows=50).blessed


def test_without_labels_mean_score_proxy_decides():
    rng = np.random.default_rng(0)
    low, high = np.abs(rng.normal(size=200)), np.abs(rng.normal(size=200)) * 2
    cand_low = logic.evaluate(low, None, 0.99)
    cand_high = logic.evaluate(high, None, 0.99)
    assert "auc_pr" not in cand_low.metrics
    ok = logic.decide_blessing(cand_low, cand_high, margin=0.02)
    assert ok.blessed and ok.rule == "mean_score_no_regression"
    assert not logic.decide_blessing(cand_high, cand_low, margin=0.02).blessed


def test_a_baseline_on_another_score_scale_is_not_compared_by_mean_score():
    rng = np.random.default_rng(1)
    ensemble = logic.evaluate(3.25 + rng.exponential(size=200), None, 0.99)  # nats
    old_ae = logic.evaluate(np.abs(rng.normal(size=200)) * 0.3, None, 0.99)  # MSE
    assert not logic.decide_blessing(
        ensemble, old_ae, margin=0.02
    ).blessed  # the scale would decide
    decision = logic.decide_blessing(ensemble, old_ae, margin=0.02, comparable_scores=False)
    assert decision.blessed and decision.rule == "incomparable_baseline"
    assert "another scale" in decision.reasons[0]
    # With labelled anomalies, AUC-PR is scale-free and still decides.
    scores, labels = _labelled(2.0)
    cand = logic.evaluate(scores, labels, 0.99)
    base = logic.evaluate(scores * 0.01, labels, 0.99)
    assert logic.decide_blessing(cand, base, margin=0.02, comparable_scores=False).rule == (
        "auc_pr_no_regression"
    )


def test_labels_without_positives_fall_back_to_the_proxy():
    rng = np.random.default_rng(0)
    scores, labels = np.abs(rng.normal(size=100)), np.zeros(100)
    cand = logic.evaluate(scores, labels, 0.99)
    assert math.isnan(cand.metrics["auc_pr"])
    assert logic.decide_blessing(cand, cand, margin=0.0).rule == "mean_score_no_regression"


def test_report_is_strict_json_and_readable():
    import json

    scores, labels = _labelled(2.0)
    cand = logic.evaluate(scores, labels, 0.99)
    decision = logic.decide_blessing(cand, None, margin=0.02)
    report = {
        "blessed": decision.blessed,
        "rule": decision.rule,
        "reasons": decision.reasons,
        "candidate_model_uri": "/m/1",
        "candidate_model_id": 1,
        "candidate": cand.to_dict(),
        "baseline": None,
        "threshold_quantile": 0.99,
        "margin": 0.02,
        "training_spans": ["2026-11-01", "2026-11-02"],
        "nan": float("nan"),
    }
    text = json.dumps(logic.json_safe(report), allow_nan=False)
    assert json.loads(text)["nan"] is None
    md = logic.report_markdown(report)
    assert md.startswith("# Evaluation gate: BLESSED")
    assert "| auc_pr |" in md and "none" in md


def test_a_stale_baseline_is_replaced_even_when_it_still_ranks_well():
    scores, labels = _labelled(4.0)
    cand = logic.evaluate(scores * 0.5 + _labelled(0.0, seed=3)[0], labels, 0.99)
    base = logic.evaluate(scores, labels, 0.99)
    # Served with a threshold far below today's scores: it alarms on every row.
    served = logic.with_served_threshold(base, scores, labels, threshold=-1.0)
    assert served.served_false_alarm_rate == 1.0
    decision = logic.decide_blessing(
        cand, served, margin=0.02, min_rows=10, stale_false_alarm_rate=0.05
    )
    assert decision.blessed and decision.rule == "stale_baseline"
    assert "alarms on 100.0% of the normal evaluation rows" in decision.reasons[0]
    assert served.served_f1 < cand.metrics["f1"]
    # Without the rule (or with a baseline that still fits) the AUC-PR comparison decides.
    plain = logic.decide_blessing(cand, served, margin=0.02, min_rows=10)
    assert plain.rule == "auc_pr_no_regression" and not plain.blessed
    fits = logic.with_served_threshold(base, scores, labels, threshold=base.threshold)
    assert fits.served_false_alarm_rate <= 0.05
    kept = logic.decide_blessing(cand, fits, margin=0.02, min_rows=10, stale_false_alarm_rate=0.05)
    assert kept.rule == "auc_pr_no_regression" and not kept.blessed


def test_a_stale_baseline_does_not_excuse_an_insane_candidate():
    scores, labels = _labelled(4.0)
    base = logic.with_served_threshold(
        logic.evaluate(scores, labels, 0.99), scores, labels, threshold=-1.0
    )
    broken = logic.evaluate(np.full(scores.shape, np.nan), labels, 0.99)
    decision = logic.decide_blessing(
        broken, base, margin=0.02, min_rows=10, stale_false_alarm_rate=0.05
    )
    assert not decision.blessed and decision.rule == "sanity"


def test_served_false_alarm_rate_without_labels_counts_all_rows():
    scores = np.linspace(0.0, 1.0, 101)
    ev = logic.evaluate(scores, None, 0.99)
    rate = logic.with_served_threshold(ev, scores, None, 0.5).served_false_alarm_rate
    assert rate == pytest.approx(50 / 101)


def test_a_stale_baseline_is_kept_when_the_candidate_alarms_worse():
    scores, labels = _labelled(4.0)
    base = logic.evaluate(scores, labels, 0.99)
    # Stale-ish (alarms on ~10 % of normal rows) but still catching the anomalies.
    served = logic.with_served_threshold(
        base, scores, labels, threshold=float(np.quantile(scores[labels == 0], 0.9))
    )
    garbage = logic.evaluate(_labelled(0.0, seed=5)[0], labels, 0.99)
    decision = logic.decide_blessing(
        garbage, served, margin=0.02, min_rows=10, stale_false_alarm_rate=0.05
    )
    assert not decision.blessed and decision.rule == "stale_baseline"
    assert "F1" in decision.reasons[1]


def test_a_stale_baseline_without_labels_gives_way_to_a_sane_candidate():
    scores = np.abs(np.random.default_rng(0).normal(size=300))
    base = logic.with_served_threshold(logic.evaluate(scores, None, 0.99), scores, None, 0.0)
    cand = logic.evaluate(scores * 2, None, 0.99)
    decision = logic.decide_blessing(
        cand, base, margin=0.02, min_rows=10, stale_false_alarm_rate=0.05
    )
    assert decision.blessed and decision.rule == "stale_baseline"
