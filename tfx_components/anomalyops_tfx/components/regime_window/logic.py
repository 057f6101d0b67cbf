"""Which spans the training window holds. Plain Python: no TFX, no ML Metadata.

A rolling window of the last ``num_spans`` spans teaches the model what "normal" was over those
days. After a sudden shift (a replaced sensor, a new operating point) that is the wrong lesson:
the old days would dominate the window for ``num_spans`` days and the model would flag the new
normal. ExampleGen records on each span the validation gate's regime-change score (the largest
two-sample KS statistic of a feature that drifted significantly against the gate's reference
days); a span whose score reaches ``restart_score`` starts a new regime, and the window then
begins at the newest such span.

Gradual drift never reaches the restart score, yet a 14-day window then teaches a mean the data
has already left. So when each of the newest ``persist`` days drifted significantly (a positive
score: the gate's test said "unlikely under no drift"), the window shrinks to the last
``drifting_spans`` spans, and widens again once a day passes without significant drift. On
days that do not drift the test warns at most 1 day in 20, so two in a row happen ~1 in 400.
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
    drifting: bool = False  # shrunk to the drifting-window size by persistent drift

    @property
    def first(self) -> int:
        return self.spans[-1]


def select(
    spans: Iterable[SpanInfo],
    num_spans: int,
    restart_score: float | None,
    *,
    drifting_spans: int | None = None,
    persist: int = 2,
) -> Window:
    """The window's spans: the last ``num_spans`` span numbers, cut at the newest regime start,
    and cut to the last ``drifting_spans`` while drift persists (the newest ``persist`` spans
    all drifted significantly).

    Span numbers may repeat (several versions or re-runs of a day): a span counts as a regime
    start (or as drifted) when any of its artifacts says so. ``restart_score=None`` never cuts
    at a regime start; ``drifting_spans=None`` never cuts for persistent drift.
    """
    if num_spans < 1:
        raise ValueError(f"num_spans must be >= 1, got {num_spans}")
    if drifting_spans is not None and drifting_spans < 1:
        raise ValueError(f"drifting_spans must be >= 1, got {drifting_spans}")
    if persist < 1:
        raise ValueError(f"persist must be >= 1, got {persist}")
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
    drifting = False
    if drifting_spans is not None:
        drifted = {i.span for i in infos if i.drift_score is not None and i.drift_score > 0}
        recent = range(newest, newest - persist, -1)
        if all(span in drifted for span in recent) and newest - drifting_spans + 1 > start:
            start, drifting = newest - drifting_spans + 1, True
    chosen = sorted({i.span for i in infos if i.span >= start}, reverse=True)
    return Window(spans=tuple(chosen), restarted_at=restarted_at, drifting=drifting)


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
