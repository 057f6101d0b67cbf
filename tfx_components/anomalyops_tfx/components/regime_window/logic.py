"""Which spans the training window holds. Plain Python: no TFX, no ML Metadata.

A rolling window of the last ``num_spans`` spans teaches the model what "normal" was over those
days. After a sudden shift (a replaced sensor, a new operating point) that is the wrong lesson:
the old days would dominate the window for ``num_spans`` days and the model would flag the new
normal. ExampleGen records on each span the validation gate's regime-change score (the largest
two-sample KS statistic of a feature that drifted significantly against the gate's reference
days); a span whose score reaches ``restart_score`` starts a new regime, and the window then
begins at the newest such span.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DRIFT_SCORE_PROPERTY = "anomalyops_drift_score"
"""Custom property of an Examples artifact: the gate's regime-change score for its day."""


@dataclass(frozen=True)
class SpanInfo:
    span: int
    drift_score: float | None  # None: no gate report (first day, or data that skipped the gate)


@dataclass(frozen=True)
class Window:
    spans: tuple[int, ...]  # newest first
    restarted_at: int | None  # the span that started the regime, if the window was cut there

    @property
    def first(self) -> int:
        return self.spans[-1]


def select(spans: Iterable[SpanInfo], num_spans: int, restart_score: float | None) -> Window:
    """The window's spans: the last ``num_spans`` span numbers, cut at the newest regime start.

    Span numbers may repeat (several versions or re-runs of a day): a span counts as a regime
    start when any of its artifacts says so. ``restart_score=None`` never cuts.
    """
    if num_spans < 1:
        raise ValueError(f"num_spans must be >= 1, got {num_spans}")
    infos = list(spans)
    if not infos:
        raise ValueError("no spans to choose a training window from")
    newest = max(i.span for i in infos)
    start = newest - num_spans + 1
    restarted_at = None
    if restart_score is not None:
        starts = [
            i.span
            for i in infos
            if start <= i.span and i.drift_score is not None and i.drift_score >= restart_score
        ]
        if starts:
            restarted_at = max(starts)
            start = restarted_at
    chosen = sorted({i.span for i in infos if i.span >= start}, reverse=True)
    return Window(spans=tuple(chosen), restarted_at=restarted_at)


def max_drift_score(drift_report: dict) -> float | None:
    """The regime-change score of a gate's ``tfdv/drift.json`` (None when nothing was compared).

    Reports of the calibrated gate carry it as ``restart_score`` (0.0 when no feature drifted
    significantly: a large but insignificant shift is day-to-day variation). Older reports
    have only per-feature divergences: their largest value.
    """
    if "restart_score" in drift_report:
        score = drift_report["restart_score"]
        return None if score is None else float(score)
    values = [
        float(s["value"])
        for s in drift_report.get("scores", [])
        if isinstance(s, dict) and s.get("value") is not None
    ]
    return max(values) if values else None
