"""The evaluation gate's HTML report: one self-contained page with inline SVG plots.

No matplotlib, no JavaScript, no external asset: the page is read from a pipeline root or a
served model's directory, often offline, and the API may serve it (so it also carries a
Content-Security-Policy that forbids scripts). Every string that comes from data (feature
names come from user specs, URIs from the pipeline root) goes through ``esc``. The plots come
from :mod:`svg_plots`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from anomalyops_tfx.components.evaluation_gate.report_model import EvaluationReport, ModelEvaluation
from anomalyops_tfx.components.evaluation_gate.svg_base import esc, fmt
from anomalyops_tfx.components.evaluation_gate.svg_plots import (
    MAX_FEATURE_BARS,
    mean_contributions,
    svg_contributions,
    svg_histogram,
    svg_pr_curve,
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222;
       padding: 0 1em; }
h1 .blessed { color: #1e7a34; } h1 .not-blessed { color: #b03a2e; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #555; } figure { margin: 1em 0; } figcaption { color: #555; max-width: 50em; }
code { word-break: break-all; } svg { max-width: 100%; height: auto; }
"""


def _facts_table(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _metrics_table(report: EvaluationReport) -> str:
    cand, base = report.candidate, report.baseline
    keys = ["threshold"]
    keys += list(cand.metrics)
    keys += [k for k in (base.metrics if base else {}) if k not in keys]

    def value(ev: ModelEvaluation | None, k: str):
        if ev is None:
            return None
        return ev.threshold if k == "threshold" else ev.metrics.get(k)

    rows = [
        f"<tr><td>{esc(k)}</td><td class='num'>{esc(fmt(value(cand, k)))}</td>"
        f"<td class='num'>{esc(fmt(value(base, k)))}</td></tr>"
        for k in keys
    ]
    if base and base.served_threshold is not None:
        for label, k in (
            ("threshold it is served with", "served_threshold"),
            ("false-alarm rate as served", "served_false_alarm_rate"),
            ("F1 as served", "served_f1"),
        ):
            rows.append(
                f"<tr><td>{esc(label)}</td><td class='num'>-</td>"
                f"<td class='num'>{esc(fmt(getattr(base, k)))}</td></tr>"
            )
    head = "<tr><th>metric</th><th>candidate</th><th>blessed baseline</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def build_html(
    report: EvaluationReport | Mapping,
    scores: np.ndarray,
    labels: np.ndarray | None,
    *,
    feature_names: Sequence[str],
    contributions: np.ndarray | None = None,
    baseline_scores: np.ndarray | None = None,
) -> str:
    """The whole page from the gate's report (the model or its JSON content) and the
    candidate's held-out scores.

    ``contributions`` is the candidate's ``feature_contributions`` ``[rows, features]`` in
    ``feature_names`` order, or None for a model without that output.
    """
    report = EvaluationReport.model_validate(report)
    scores = np.asarray(scores, dtype=np.float64)
    threshold = report.threshold
    if threshold is not None and not math.isfinite(threshold):
        threshold = None
    finite = np.isfinite(scores)
    y = None if labels is None else np.asarray(labels).astype(bool)
    blessed = report.blessed
    verdict = report.verdict.label
    cand = report.candidate
    spans = report.spans
    baseline_id = report.baseline_model_id

    facts = [
        ("Decision", f"<strong>{verdict}</strong> (rule <code>{esc(report.rule)}</code>)"),
        (
            "Candidate model",
            f"<code>{esc(report.candidate_model_uri)}</code> (id {esc(report.candidate_model_id)})",
        ),
        (
            "Blessed baseline",
            f"<code>{esc(report.baseline_model_uri)}</code> (id {esc(baseline_id)})"
            if baseline_id is not None
            else "none",
        ),
        (
            "Window spans",
            f"{len(spans)} day(s): {esc(spans[0])} … {esc(spans[-1])}" if spans else "-",
        ),
        ("Evaluation split", esc(report.eval_split)),
        (
            "Evaluation rows",
            f"{esc(cand.rows)} ({esc(cand.positives)} labelled anomalies)"
            if cand.labelled
            else f"{esc(cand.rows)} (no labels)",
        ),
        ("Rows skipped (missing features)", esc(report.rows_dropped_missing_features)),
        (
            "Threshold",
            f"{esc(fmt(threshold))} (quantile {esc(report.threshold_quantile)} of "
            + ("normal" if cand.labelled else "all")
            + " held-out scores)",
        ),
        ("No-regression margin", esc(report.margin)),
        ("Stale false-alarm rate", esc(fmt(report.stale_false_alarm_rate))),
        ("Pipeline run", esc(report.pipeline_run_id or "-")),
        ("Evaluated at", esc(report.evaluated_at or "-")),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Served by the API too: nothing may run or load, only inline styles render.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline';\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Evaluation report: {verdict}</title>",
        f"<style>{STYLE}</style></head><body>",
        f'<h1>Evaluation gate: <span class="{"blessed" if blessed else "not-blessed"}">'
        f"{verdict}</span></h1>",
        "<h2>Why</h2><ul>",
        *[f"<li>{esc(r)}</li>" for r in report.reasons],
        "</ul>",
        _facts_table(facts),
        "<h2>Metrics</h2>",
        _metrics_table(report),
        "<h2>Scores of held-out rows</h2>",
    ]
    if not finite.any():
        parts.append('<p class="note">No finite score to plot.</p>')
    else:
        if not finite.all():
            parts.append(
                f'<p class="note">{int((~finite).sum())} non-finite score(s) left out.</p>'
            )
        s = scores[finite]
        yf = None if y is None else y[finite]
        with_anomalies = yf is not None and yf.any()
        normal = s if yf is None else s[~yf]
        anomalies = s[yf] if with_anomalies else None
        caption = (
            "Normal and anomalous rows each as a share of their own group, so a handful of "
            "anomalies stays visible beside thousands of normal rows."
            if with_anomalies
            else "No labelled anomalies among these rows: the scores of all of them."
        )
        parts += [
            "<figure>",
            svg_histogram(normal, anomalies, threshold),
            f"<figcaption>{caption} Dashed line: the calibrated threshold; a row alarms "
            "when its score is above it.</figcaption></figure>",
        ]
        parts.append("<h2>Precision and recall</h2>")
        if with_anomalies:
            base = None
            if baseline_scores is not None:
                b = np.asarray(baseline_scores, dtype=np.float64)
                base = (
                    b[finite] if b.shape == scores.shape and np.isfinite(b[finite]).all() else None
                )
            parts += [
                "<figure>",
                svg_pr_curve(yf, s, threshold, baseline_scores=base),
                "<figcaption>Every threshold's precision and recall on the held-out rows; the "
                "dot is the calibrated threshold (the candidate's if it is served), the dotted line "
                "the share of anomalies (a random ranking).</figcaption></figure>",
            ]
        else:
            parts.append(
                '<p class="note">No labelled anomalies among the held-out rows: no '
                "precision-recall curve. Keep labels in the lake to get one.</p>"
            )
    parts.append("<h2>Which features drive the score</h2>")
    parts.append(_contribution_section(scores, finite, threshold, feature_names, contributions))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _contribution_section(scores, finite, threshold, names, contributions) -> str:
    if contributions is None:
        return (
            '<p class="note">This model has no <code>feature_contributions</code> output '
            "(trained before the detector ensemble): no per-feature view.</p>"
        )
    c = np.asarray(contributions, dtype=np.float64)
    if c.ndim != 2 or c.shape != (scores.size, len(names)):
        return (
            f'<p class="note"><code>feature_contributions</code> has shape {esc(c.shape)}, '
            f"expected ({scores.size}, {len(names)}): not shown.</p>"
        )
    rows = finite & np.all(np.isfinite(c), axis=1)
    if not rows.any():
        return '<p class="note">No row with finite contributions.</p>'
    flagged = scores[rows] > threshold if threshold is not None else np.zeros(rows.sum(), bool)
    on, off = mean_contributions(c[rows], flagged)
    cut = (
        f" The {MAX_FEATURE_BARS} largest of {len(names)} features are shown."
        if len(names) > MAX_FEATURE_BARS
        else ""
    )
    note = "" if on is not None else " No held-out row is above the threshold."
    return (
        "<figure>"
        + svg_contributions(names, on, off, counts=(int(flagged.sum()), int((~flagged).sum())))
        + "<figcaption>Mean of each feature's share of the anomaly score over the rows the "
        "candidate flags (score above the threshold) and over the others. Only the parts of the "
        "detector that split by feature (per-feature tails, reconstruction error) are shared "
        f"out, so the shares need not add up to the score.{cut}{note}</figcaption></figure>"
    )
