"""Calibrate, evaluate, compare, bless: the gate's decisions in plain numpy (no TFX, no TF).

Rules (docs/pipeline.md explains why):

- **Threshold**: the ``quantile`` of held-out scores of normal rows (label 0), or of all
  held-out rows when there are no labels.
- **Metrics with labels** at that threshold: AUC-PR (average precision), F1, false-alarm rate
  ``FP / negatives`` and missed-alarm rate ``FN / positives``.
- **Blessing**: the candidate must pass sanity checks (enough rows, finite scores and
  threshold). With a baseline (the currently blessed model, scored on the same rows and
  calibrated the same way): with labels, ``auc_pr >= baseline auc_pr - margin``; without
  labels, ``mean score <= baseline mean score * (1 + margin)`` (a proxy: both scores are
  reconstruction errors in standardized units of each model's own training data).
- **Stale baseline**: before that comparison, the blessed model is also scored *as it is
  served*, at its own threshold. If it alarms there on more than ``stale_false_alarm_rate`` of
  the normal rows (it was calibrated for ``1 - quantile``), the data has moved away from it:
  its ranking may still look fine, but its alarms are useless. The candidate replaces it when
  its F1 at its own calibrated threshold is at least the baseline's F1 as served (any sane
  candidate, without labels).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from anomalyops_tfx.components.evaluation_gate.report_model import EvaluationReport


@dataclass(frozen=True)
class Evaluation:
    """One model scored on the evaluation rows."""

    rows: int
    threshold: float
    metrics: dict[str, float]
    labelled: bool
    positives: int = 0
    scores_finite: bool = True
    served_threshold: float | None = None
    """For the blessed baseline: the threshold it is served with (from its blessing)."""
    served_false_alarm_rate: float | None = None
    """Share of normal rows (all rows when unlabelled) alarmed at ``served_threshold``."""
    served_f1: float | None = None
    """F1 at ``served_threshold`` (None without labelled anomalies among the rows)."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Blessing:
    blessed: bool
    reasons: list[str] = field(default_factory=list)
    rule: str = ""


def calibrate_threshold(scores: np.ndarray, labels: np.ndarray | None, quantile: float) -> float:
    """The ``quantile`` of scores of normal rows (all rows when unlabelled)."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"threshold quantile must be in (0, 1), got {quantile}")
    scores = np.asarray(scores, dtype=np.float64)
    normal = scores if labels is None else scores[np.asarray(labels) == 0]
    if normal.size == 0:
        raise ValueError("no normal (label 0) rows to calibrate the threshold on")
    return float(np.quantile(normal, quantile))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision (scikit-learn's definition).

    ``sum_k (R_k - R_{k-1}) * P_k`` over distinct score thresholds, highest first; tied
    scores enter together. NaN when there is no positive row.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    positives = labels.sum()
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    # Last index of each run of equal scores: the points where the threshold moves.
    ends = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tp = np.cumsum(labels)[ends]
    fp = (ends + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def alarm_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Confusion-based metrics of ``score > threshold`` against ``labels`` (1 = anomaly)."""
    labels = np.asarray(labels).astype(bool)
    alarms = np.asarray(scores) > threshold
    tp = int(np.sum(alarms & labels))
    fp = int(np.sum(alarms & ~labels))
    fn = int(np.sum(~alarms & labels))
    negatives, positives = int(np.sum(~labels)), int(np.sum(labels))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / positives if positives else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
    return {
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "false_alarm_rate": fp / negatives if negatives else float("nan"),
        "missed_alarm_rate": fn / positives if positives else float("nan"),
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
    }


def evaluate(scores: np.ndarray, labels: np.ndarray | None, quantile: float) -> Evaluation:
    """Calibrate on these rows and compute the metrics at that threshold."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = bool(np.all(np.isfinite(scores)))
    if scores.size == 0:
        return Evaluation(rows=0, threshold=float("nan"), metrics={}, labelled=labels is not None)
    if not finite:
        return Evaluation(
            rows=int(scores.size),
            threshold=float("nan"),
            metrics={},
            labelled=labels is not None,
            scores_finite=False,
        )
    threshold = calibrate_threshold(scores, labels, quantile)
    metrics: dict[str, float] = {
        "mean_score": float(np.mean(scores)),
        "alarm_rate": float(np.mean(scores > threshold)),
    }
    positives = 0
    if labels is not None:
        labels = np.asarray(labels).astype(bool)
        positives = int(labels.sum())
        metrics["auc_pr"] = average_precision(labels, scores)
        metrics.update(alarm_metrics(labels, scores, threshold))
    return Evaluation(
        rows=int(scores.size),
        threshold=threshold,
        metrics=metrics,
        labelled=labels is not None,
        positives=positives,
    )


def with_served_threshold(
    evaluation: Evaluation, scores: np.ndarray, labels: np.ndarray | None, threshold: float
) -> Evaluation:
    """``evaluation`` plus the false-alarm rate at the threshold the model is served with."""
    scores = np.asarray(scores, dtype=np.float64)
    normal = scores if labels is None else scores[np.asarray(labels) == 0]
    rate = float(np.mean(normal > threshold)) if normal.size else float("nan")
    f1 = None
    if labels is not None and np.any(np.asarray(labels) == 1):
        f1 = alarm_metrics(labels, scores, threshold)["f1"]
    return replace(
        evaluation,
        served_threshold=float(threshold),
        served_false_alarm_rate=rate,
        served_f1=f1,
    )


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def sanity_problems(candidate: Evaluation, min_rows: int) -> list[str]:
    problems = []
    if candidate.rows < min_rows:
        problems.append(f"only {candidate.rows} evaluation rows (< {min_rows})")
    if not candidate.scores_finite:
        problems.append("the candidate produced non-finite anomaly scores")
    elif candidate.rows and not _finite(candidate.threshold):
        problems.append("the calibrated threshold is not finite")
    return problems


def decide_blessing(
    candidate: Evaluation,
    baseline: Evaluation | None,
    *,
    margin: float,
    min_rows: int = 1,
    stale_false_alarm_rate: float | None = None,
    comparable_scores: bool = True,
) -> Blessing:
    """Bless or not, with the reasons spelled out for the report.

    ``comparable_scores=False``: the two models' raw scores are on different scales (a baseline
    from before the detector ensemble), so only the scale-free comparisons (AUC-PR, F1, alarm
    rates) may decide; the unlabelled mean-score proxy may not."""
    problems = sanity_problems(candidate, min_rows)
    if problems:
        return Blessing(False, problems, rule="sanity")
    if baseline is None:
        return Blessing(
            True, ["no blessed model yet; the candidate passes the sanity checks"], "sanity"
        )
    if not baseline.scores_finite:
        return Blessing(
            True, ["the blessed model produces non-finite scores on these rows"], "sanity"
        )
    served = baseline.served_false_alarm_rate
    if stale_false_alarm_rate is not None and _finite(served) and served > stale_false_alarm_rate:
        stale = (
            f"the blessed model, at the threshold it is served with "
            f"({baseline.served_threshold:.4f}), alarms on {served:.1%} of the normal "
            f"evaluation rows (stale above {stale_false_alarm_rate:.1%}): the data has moved away "
            "from it"
        )
        cand_f1, base_f1 = candidate.metrics.get("f1"), baseline.served_f1
        if _finite(cand_f1) and _finite(base_f1):
            # Compare what users would get: each model's alarms as it would be served.
            ok = cand_f1 >= base_f1
            verb = ">=" if ok else "<"
            return Blessing(
                ok,
                [
                    stale,
                    f"F1 {cand_f1:.4f} at the candidate's calibrated threshold {verb} the blessed "
                    f"model's {base_f1:.4f} at its served threshold",
                ],
                rule="stale_baseline",
            )
        return Blessing(
            True,
            [stale, "no labelled anomalies to compare on: the sane candidate replaces it"],
            rule="stale_baseline",
        )

    cand_auc, base_auc = candidate.metrics.get("auc_pr"), baseline.metrics.get("auc_pr")
    if _finite(cand_auc) and _finite(base_auc):
        floor = base_auc - margin
        ok = cand_auc >= floor
        verb = ">=" if ok else "<"
        return Blessing(
            ok,
            [
                f"AUC-PR {cand_auc:.4f} {verb} blessed model's {base_auc:.4f} - margin {margin} = {floor:.4f}"
            ],
            rule="auc_pr_no_regression",
        )
    # No positive label among the rows: fall back to the unlabelled proxy.
    if not comparable_scores:
        return Blessing(
            True,
            [
                "no labelled anomalies in the evaluation rows, and the blessed model's scores are "
                "on another scale (it predates the detector ensemble): mean scores cannot be "
                "compared; the sane candidate replaces it"
            ],
            rule="incomparable_baseline",
        )
    cand_mean, base_mean = candidate.metrics["mean_score"], baseline.metrics["mean_score"]
    ceiling = base_mean * (1 + margin)
    ok = cand_mean <= ceiling
    verb = "<=" if ok else ">"
    return Blessing(
        ok,
        [
            "no labelled anomalies in the evaluation rows: comparing mean reconstruction error "
            f"{cand_mean:.4f} {verb} blessed model's {base_mean:.4f} x (1 + {margin}) = {ceiling:.4f}"
        ],
        rule="mean_score_no_regression",
    )


def json_safe(obj):
    """``obj`` with NaN/inf floats as None, so the report is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def report_markdown(report: EvaluationReport | Mapping) -> str:
    """A readable report of the gate's JSON report (the model or its JSON content)."""
    report = EvaluationReport.model_validate(report)
    cand, base = report.candidate, report.baseline
    lines = [
        f"# Evaluation gate: {report.verdict.label}",
        "",
        f"- Candidate model: `{report.candidate_model_uri}` (id {report.candidate_model_id})",
        "- Blessed baseline: "
        + (f"`{report.baseline_model_uri}` (id {report.baseline_model_id})" if base else "none"),
        f"- Evaluation rows: {cand.rows} ({cand.positives} labelled anomalies)"
        if cand.labelled
        else f"- Evaluation rows: {cand.rows} (no labels)",
        f"- Spans: {', '.join(report.training_spans)}",
        f"- Threshold quantile: {report.threshold_quantile}; margin: {report.margin}",
        f"- Rule: {report.rule}",
        "",
        "## Why",
        "",
        *[f"- {r}" for r in report.reasons],
        "",
        "## Metrics",
        "",
        "| metric | candidate | blessed baseline |",
        "|---|---|---|",
        f"| threshold | {_fmt(cand.threshold)} | {_fmt(base.threshold) if base else '-'} |",
    ]
    keys = list(cand.metrics) + [k for k in (base.metrics if base else {}) if k not in cand.metrics]
    for key in keys:
        b = _fmt(base.metrics.get(key)) if base else "-"
        lines.append(f"| {key} | {_fmt(cand.metrics.get(key))} | {b} |")
    if base and base.served_threshold is not None:
        lines += [
            f"| threshold it is served with | - | {_fmt(base.served_threshold)} |",
            f"| false-alarm rate as served | - | {_fmt(base.served_false_alarm_rate)} |",
        ]
    return "\n".join(lines) + "\n"


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.4g}"
    return str(x)
