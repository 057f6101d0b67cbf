"""The evaluation gate's HTML report: one self-contained page with inline SVG plots.

No matplotlib, no JavaScript, no external asset: the page is read from a pipeline root or a
served model's directory, often offline, and the API may serve it (so it also carries a
Content-Security-Policy that forbids scripts). Every string that comes from data (feature
names come from user specs, URIs from the pipeline root) goes through :func:`esc`.

Plots (numpy only, unit-tested by parsing the SVG):

- :func:`svg_histogram`: held-out scores, normal rows and (with labels) anomalies as shares of
  their own group, the threshold as a vertical line; log-scale x when scores are heavy-tailed.
- :func:`svg_pr_curve`: precision against recall over every threshold, the operating point at
  the calibrated threshold, the baseline's curve when given.
- :func:`svg_contributions`: mean ``feature_contributions`` over flagged vs unflagged rows.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from anomalyops_tfx.components.evaluation_gate.report_model import EvaluationReport, ModelEvaluation

HEAVY_TAIL_RATIO = 30.0
"""Log-scale x when the largest score is this many times the median (the bulk of normal rows
would otherwise be squeezed into the first bin)."""
HIST_BINS = 40
MAX_CURVE_POINTS = 400
"""The PR curve is thinned to this many points: an SVG with 10^5 vertices is slow to open."""
MAX_FEATURE_BARS = 25
MAX_LABEL_CHARS = 32

COLOURS = {"normal": "#3b75af", "anomaly": "#e07b39", "baseline": "#8c8c8c", "threshold": "#c0392b"}
SVG_NS = "http://www.w3.org/2000/svg"


def esc(value) -> str:
    """HTML/XML-escape a value for text and attribute content (quotes too)."""
    return html.escape(str(value), quote=True)


def fmt(x) -> str:
    """A number for people: 4 significant digits, '-' for missing, 'nan' for NaN."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, (float, np.floating)):
        return "nan" if math.isnan(x) else f"{float(x):.4g}"
    return str(x)


def _num(x: float) -> str:
    """A coordinate for SVG: finite, short."""
    if not math.isfinite(x):
        raise ValueError(f"non-finite SVG coordinate {x}")
    return f"{x:.2f}".rstrip("0").rstrip(".") or "0"


@dataclass(frozen=True)
class Scale:
    """Maps data values in ``[lo, hi]`` to pixels in ``[px_lo, px_hi]`` (linear or log10)."""

    lo: float
    hi: float
    px_lo: float
    px_hi: float
    log: bool = False

    def _t(self, v: float) -> float:
        if self.log:
            a, b = math.log10(self.lo), math.log10(self.hi)
            v = math.log10(max(v, self.lo))
        else:
            a, b = self.lo, self.hi
        return (v - a) / (b - a) if b > a else 0.5

    def __call__(self, v: float) -> float:
        return self.px_lo + self._t(float(v)) * (self.px_hi - self.px_lo)

    def ticks(self, target: int = 5) -> list[float]:
        if self.log:
            first, last = math.ceil(math.log10(self.lo)), math.floor(math.log10(self.hi))
            powers = [10.0**e for e in range(first, last + 1)]
            if len(powers) < 4:  # few decades: 1-2-5 ticks so the axis stays readable
                powers = [
                    m * 10.0**e
                    for e in range(first - 1, last + 1)
                    for m in (1, 2, 5)
                    if self.lo <= m * 10.0**e <= self.hi
                ]
            if len(powers) > 2 * target:
                step = math.ceil(len(powers) / target)
                powers = powers[::step]
            return powers or [self.lo, self.hi]
        span = self.hi - self.lo
        if span <= 0:
            return [self.lo]
        raw = span / target
        mag = 10.0 ** math.floor(math.log10(raw))
        step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
        start = math.ceil(self.lo / step) * step
        return [
            round(start + i * step, 12)
            for i in range(int((self.hi - start) / step + 1e-9) + 1)
            if start + i * step <= self.hi + 1e-12
        ]


def _svg_open(width: int, height: int, label: str) -> list[str]:
    return [
        f'<svg xmlns="{SVG_NS}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{esc(label)}" font-family="sans-serif" '
        'font-size="12">',
        f"<title>{esc(label)}</title>",
    ]


def _frame(x: float, y: float, w: float, h: float) -> str:
    return (
        f'<rect class="frame" x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}" '
        'fill="none" stroke="#bbb"/>'  # light, so a curve along the edge stays visible
    )


def _x_axis(scale: Scale, y: float, label: str) -> list[str]:
    out = []
    for t in scale.ticks():
        px = scale(t)
        out.append(
            f'<line x1="{_num(px)}" x2="{_num(px)}" y1="{_num(y)}" y2="{_num(y + 4)}" '
            'stroke="#444"/>'
        )
        out.append(
            f'<text x="{_num(px)}" y="{_num(y + 16)}" text-anchor="middle">{esc(fmt(t))}</text>'
        )
    out.append(
        f'<text x="{_num((scale.px_lo + scale.px_hi) / 2)}" y="{_num(y + 32)}" '
        f'text-anchor="middle">{esc(label)}</text>'
    )
    return out


def _y_axis(scale: Scale, x: float, label: str, mid_y: float, percent: bool = False) -> list[str]:
    out = []
    for t in scale.ticks():
        py = scale(t)
        text = f"{fmt(t * 100)}%" if percent else fmt(t)
        out.append(
            f'<line x1="{_num(x - 4)}" x2="{_num(x)}" y1="{_num(py)}" y2="{_num(py)}" '
            'stroke="#444"/>'
        )
        out.append(
            f'<text x="{_num(x - 6)}" y="{_num(py + 4)}" text-anchor="end">{esc(text)}</text>'
        )
    out.append(
        f'<text transform="translate(14 {_num(mid_y)}) rotate(-90)" text-anchor="middle">'
        f"{esc(label)}</text>"
    )
    return out


def _legend(items: Sequence[tuple[str, str]], x: float, y: float) -> list[str]:
    """One row of swatches above the plot, where it cannot hide data."""
    out = []
    for colour, text in items:
        out.append(
            f'<rect x="{_num(x)}" y="{_num(y - 9)}" width="10" height="10" fill="{colour}"/>'
        )
        out.append(f'<text x="{_num(x + 14)}" y="{_num(y)}">{esc(text)}</text>')
        x += 14 + 7 * len(text) + 16  # ~7 px per character at 12 px
    return out


def use_log_scale(scores: np.ndarray, threshold: float | None = None) -> bool:
    """Heavy-tailed, positive scores: the largest is ``HEAVY_TAIL_RATIO`` x the median or more."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0 or np.any(scores < 0) or (threshold is not None and threshold <= 0):
        return False
    median = float(np.median(scores))
    return median > 0 and float(np.max(scores)) / median >= HEAVY_TAIL_RATIO


def histogram_bins(scores: np.ndarray, threshold: float | None, log: bool) -> np.ndarray:
    """Shared bin edges over every score and the threshold (so the line is always inside)."""
    values = np.asarray(scores, dtype=np.float64)
    if threshold is not None and math.isfinite(threshold):
        values = np.r_[values, threshold]
    if log:
        positive = values[values > 0]
        lo, hi = float(positive.min()), float(positive.max())
        if hi <= lo:
            lo, hi = lo / 2, hi * 2
        return np.geomspace(lo, hi, HIST_BINS + 1)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        pad = abs(lo) * 0.5 or 0.5
        lo, hi = lo - pad, hi + pad
    return np.linspace(lo, hi, HIST_BINS + 1)


def svg_histogram(
    normal: np.ndarray,
    anomalies: np.ndarray | None,
    threshold: float | None,
    *,
    log: bool | None = None,
    width: int = 720,
    height: int = 320,
) -> str:
    """Score histogram: each group as a share of its own rows, the threshold a vertical line.

    Scores outside the bins cannot occur (the bins span every score); on a log scale scores at
    or below the smallest positive one are counted in the first bin. Each bar carries
    ``data-lo``/``data-hi`` (its bin) and a ``<title>`` tooltip with the count.
    """
    normal = np.asarray(normal, dtype=np.float64)
    anomalies = None if anomalies is None else np.asarray(anomalies, dtype=np.float64)
    everything = normal if anomalies is None else np.r_[normal, anomalies]
    if threshold is not None and not math.isfinite(threshold):
        threshold = None
    if log is None:
        log = use_log_scale(everything, threshold)
    edges = histogram_bins(everything, threshold, log)
    left, right, top, bottom = 64, width - 16, 36, height - 44
    xs = Scale(float(edges[0]), float(edges[-1]), left, right, log=log)

    groups = [("normal", normal, "held-out normal rows" if anomalies is not None else "rows")]
    if anomalies is not None:
        groups.append(("anomaly", anomalies, "labelled anomalies"))
    shares = {}
    for key, values, _ in groups:
        clipped = np.clip(values, edges[0], edges[-1])
        counts, _ = np.histogram(clipped, bins=edges)
        shares[key] = (counts, counts / max(values.size, 1))
    top_share = max((float(s.max()) for _, s in shares.values() if s.size), default=0.0) or 1.0
    ys = Scale(0.0, top_share * 1.05, bottom, top)

    scale_name = "log scale" if log else "linear scale"
    out = _svg_open(width, height, f"Histogram of anomaly scores ({scale_name})")
    out.append(_frame(left, top, right - left, bottom - top))
    for key, _, name in groups:
        counts, share = shares[key]
        for i, (c, s) in enumerate(zip(counts, share, strict=True)):
            if c == 0:
                continue
            x0, x1 = xs(edges[i]), xs(edges[i + 1])
            y = ys(s)
            out.append(
                f'<rect class="bar {key}" data-lo="{float(edges[i])!r}" data-hi="{float(edges[i + 1])!r}" '
                f'x="{_num(x0)}" y="{_num(y)}" width="{_num(max(x1 - x0, 0.5))}" '
                f'height="{_num(bottom - y)}" fill="{COLOURS[key]}" fill-opacity="0.6">'
                f"<title>{esc(name)}: {c} ({s:.1%}) with score in "
                f"[{esc(fmt(edges[i]))}, {esc(fmt(edges[i + 1]))})</title></rect>"
            )
    if threshold is not None:
        px = xs(threshold)
        out.append(
            f'<line class="threshold" x1="{_num(px)}" x2="{_num(px)}" y1="{_num(top)}" '
            f'y2="{_num(bottom)}" stroke="{COLOURS["threshold"]}" stroke-width="2" '
            'stroke-dasharray="6 3"/>'
        )
        anchor = "end" if px > (left + right) / 2 else "start"
        dx = -4 if anchor == "end" else 4
        out.append(
            f'<text x="{_num(px + dx)}" y="{_num(top + 14)}" text-anchor="{anchor}" '
            f'fill="{COLOURS["threshold"]}">threshold {esc(fmt(threshold))}</text>'
        )
    out += _x_axis(xs, bottom, f"anomaly score ({scale_name})")
    out += _y_axis(ys, left, "share of the group's rows", (top + bottom) / 2, percent=True)
    legend = [(COLOURS[k], f"{name} ({v.size})") for k, v, name in groups]
    out += _legend(legend, left, 20)
    out.append("</svg>")
    return "\n".join(out)


def pr_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at every distinct score threshold, highest first (ties together)."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    ends = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tp = np.cumsum(labels)[ends]
    precision = tp / (ends + 1)
    recall = tp / max(int(labels.sum()), 1)
    return recall, precision


def _thin(recall: np.ndarray, precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if recall.size <= MAX_CURVE_POINTS:
        return recall, precision
    keep = np.unique(np.r_[np.linspace(0, recall.size - 1, MAX_CURVE_POINTS).astype(int)])
    return recall[keep], precision[keep]


def _curve_path(recall, precision, xs: Scale, ys: Scale) -> str:
    """Step path: precision holds from the previous recall to this one (average precision)."""
    recall, precision = _thin(recall, precision)
    d = [f"M{_num(xs(0.0))},{_num(ys(float(precision[0])))}"]
    for r, p in zip(recall, precision, strict=True):
        d.append(f"H{_num(xs(float(r)))}V{_num(ys(float(p)))}")
    return "".join(d)


def svg_pr_curve(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float | None,
    *,
    baseline_scores: np.ndarray | None = None,
    width: int = 560,
    height: int = 420,
) -> str:
    """Precision-recall curve of the candidate (and the baseline, dashed), operating point at
    ``threshold`` (``score > threshold`` alarms), the no-skill precision as a dotted line."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    left, right, top, bottom = 64, width - 16, 36, height - 44
    xs = Scale(0.0, 1.0, left, right)
    ys = Scale(0.0, 1.0, bottom, top)
    out = _svg_open(width, height, "Precision-recall curve")
    out.append(_frame(left, top, right - left, bottom - top))
    prevalence = float(labels.mean()) if labels.size else 0.0
    out.append(
        f'<line class="no-skill" x1="{_num(left)}" x2="{_num(right)}" y1="{_num(ys(prevalence))}" '
        f'y2="{_num(ys(prevalence))}" stroke="#999" stroke-dasharray="2 3"/>'
    )
    legend = [(COLOURS["normal"], "candidate")]
    if baseline_scores is not None:
        r, p = pr_curve(labels, baseline_scores)
        out.append(
            f'<path class="curve baseline" d="{_curve_path(r, p, xs, ys)}" fill="none" '
            f'stroke="{COLOURS["baseline"]}" stroke-width="1.5" stroke-dasharray="5 3"/>'
        )
        legend.append((COLOURS["baseline"], "blessed baseline"))
    r, p = pr_curve(labels, scores)
    out.append(
        f'<path class="curve candidate" d="{_curve_path(r, p, xs, ys)}" fill="none" '
        f'stroke="{COLOURS["normal"]}" stroke-width="2"/>'
    )
    if threshold is not None and math.isfinite(threshold):
        alarms = scores > threshold
        tp = int(np.sum(alarms & labels))
        op_recall = tp / max(int(labels.sum()), 1)
        op_precision = tp / int(alarms.sum()) if alarms.any() else 1.0
        cx, cy = xs(op_recall), ys(op_precision)
        out.append(
            f'<circle class="operating-point" cx="{_num(cx)}" cy="{_num(cy)}" r="5" '
            f'fill="{COLOURS["threshold"]}"><title>at the threshold {esc(fmt(threshold))}: '
            f"precision {op_precision:.3f}, recall {op_recall:.3f}</title></circle>"
        )
        legend.append(
            (COLOURS["threshold"], f"at threshold: P {op_precision:.2f}, R {op_recall:.2f}")
        )
    out += _x_axis(xs, bottom, "recall")
    out += _y_axis(ys, left, "precision", (top + bottom) / 2)
    out += _legend(legend, left, 20)
    out.append("</svg>")
    return "\n".join(out)


def mean_contributions(
    contributions: np.ndarray, flagged: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-feature mean contribution over flagged rows and over the others (None if no rows)."""
    contributions = np.asarray(contributions, dtype=np.float64)
    flagged = np.asarray(flagged, dtype=bool)
    on = contributions[flagged].mean(axis=0) if flagged.any() else None
    off = contributions[~flagged].mean(axis=0) if (~flagged).any() else None
    return on, off


def svg_contributions(
    names: Sequence[str],
    flagged_mean: np.ndarray | None,
    normal_mean: np.ndarray | None,
    *,
    counts: tuple[int, int] | None = None,
    width: int = 720,
) -> str:
    """Horizontal bars per feature: mean contribution over flagged rows and over the others.

    Features sorted by their flagged mean (by the other mean without flagged rows); at most
    ``MAX_FEATURE_BARS``. Long names are cut for the axis; the full name is in the tooltip.
    ``counts``: (flagged rows, other rows), shown in the legend.
    """
    key = flagged_mean if flagged_mean is not None else normal_mean
    if key is None:
        raise ValueError("no rows to average contributions over")
    order = np.argsort(-np.asarray(key, dtype=np.float64), kind="mergesort")[:MAX_FEATURE_BARS]
    series = [
        (k, m, name)
        for k, m, name in (
            ("anomaly", flagged_mean, "flagged rows" + (f" ({counts[0]})" if counts else "")),
            ("normal", normal_mean, "not flagged" + (f" ({counts[1]})" if counts else "")),
        )
        if m is not None
    ]
    bar_h, gap = 10, 8
    row_h = bar_h * len(series) + gap
    left, right, top = 230, width - 24, 40
    bottom = top + row_h * len(order)
    height = bottom + 44
    peak = max(float(np.max(m[order])) for _, m, _ in series)
    xs = Scale(0.0, peak * 1.05 if peak > 0 else 1.0, left, right)
    out = _svg_open(width, height, "Mean feature contribution, flagged rows vs the others")
    out.append(_frame(left, top, right - left, bottom - top))
    for row, j in enumerate(order):
        name = str(names[j])
        short = name if len(name) <= MAX_LABEL_CHARS else name[: MAX_LABEL_CHARS - 1] + "…"
        y = top + row * row_h + gap / 2
        out.append(
            f'<text class="feature" x="{left - 6}" y="{_num(y + bar_h * len(series) / 2 + 4)}" '
            f'text-anchor="end"><title>{esc(name)}</title>{esc(short)}</text>'
        )
        for i, (k, means, label) in enumerate(series):
            v = float(means[j])
            w = max(xs(max(v, 0.0)) - left, 0.0)
            out.append(
                f'<rect class="bar {k}" x="{left}" y="{_num(y + i * bar_h)}" width="{_num(w)}" '
                f'height="{bar_h}" fill="{COLOURS[k]}"><title>{esc(name)}, {esc(label)}: '
                f"{esc(fmt(v))}</title></rect>"
            )
    out += _x_axis(xs, bottom, "mean contribution to the anomaly score")
    out += _legend([(COLOURS[k], label) for k, _, label in series], left, 20)
    out.append("</svg>")
    return "\n".join(out)


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
