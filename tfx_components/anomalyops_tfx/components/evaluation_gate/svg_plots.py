"""The evaluation report's plots as inline SVG strings (numpy only, no JavaScript, no assets).

Every string that comes from data (feature names come from user specs) goes through
:func:`esc`. Unit-tested by parsing the SVG.

- :func:`svg_histogram`: held-out scores, normal rows and (with labels) anomalies as shares of
  their own group, the threshold as a vertical line; log-scale x when scores are heavy-tailed.
- :func:`svg_pr_curve`: precision against recall over every threshold, the operating point at
  the calibrated threshold, the baseline's curve when given.
- :func:`svg_contributions`: mean ``feature_contributions`` over flagged vs unflagged rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from anomalyops_tfx.components.evaluation_gate.svg_base import (
    COLOURS,
    Scale,
    _frame,
    _legend,
    _num,
    _svg_open,
    _x_axis,
    _y_axis,
    esc,
    fmt,
)

HEAVY_TAIL_RATIO = 30.0
"""Log-scale x when the largest score is this many times the median (the bulk of normal rows
would otherwise be squeezed into the first bin)."""
HIST_BINS = 40
MAX_CURVE_POINTS = 400
"""The PR curve is thinned to this many points: an SVG with 10^5 vertices is slow to open."""
MAX_FEATURE_BARS = 25
MAX_LABEL_CHARS = 32


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
