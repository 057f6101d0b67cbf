"""Served-traffic monitoring: per model version, how often the rows it scored were flagged.

A model is calibrated so that about ``1 - threshold_quantile`` of normal rows cross its
threshold (``ModelMetadata.threshold_quantile``). If uploads alarm on 30 % of rows when the
model was calibrated for 1 %, the data has drifted away from what the model was trained on
(or something upstream broke); this module is where the API notices.

* :class:`TrafficMonitor` holds, per version, the rows scored, flagged and left unscored
  (temporal warm-up rows, NaN score), a histogram of ``score / threshold`` and when the
  version was first and last seen. It lives in memory and restarts from zero with the process.
* A :class:`Recorder` is made per request or job; :func:`anomalyops_api.scoring.score_file`
  feeds it every scored chunk (numpy, never per row), and it is committed only once the
  whole file was scored: a failed upload's rows were never served.
* :func:`assess` compares the observed alarm rate with the calibrated one
  (:mod:`anomalyops.alarm_band`, shared with the daily served-traffic check).
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from anomalyops.alarm_band import (
    Assessment,
    assess_counts,
    calibrated_rate,
)

if TYPE_CHECKING:
    from anomalyops_api.metrics import ApiMetrics
    from anomalyops_api.model import LoadedModel, ModelMetadata

HISTOGRAM_EDGES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
"""Lower edges of the ``score / threshold`` bins: bin ``i`` holds ``[edges[i], edges[i+1])``,
the last one everything from 10 up; ratios below 0 (negative scores) count in the first."""
_EDGES = np.asarray(HISTOGRAM_EDGES, dtype=np.float64)

MAX_TRACKED_VERSIONS = 64
"""Versions kept in memory (and as metric label values); the least recently seen goes first."""


def calibrated_alarm_rate(metadata: ModelMetadata) -> float | None:
    """``1 - threshold_quantile``, the share of normal rows the threshold was set to flag."""
    return calibrated_rate(metadata.threshold_quantile)


@dataclass
class _Tally:
    """Counts of one version (or one recorder's file)."""

    rows: int = 0
    flagged: int = 0
    unscored: int = 0
    counts: np.ndarray | None = None

    def add(self, other: _Tally) -> None:
        self.rows += other.rows
        self.flagged += other.flagged
        self.unscored += other.unscored
        if self.counts is not None and other.counts is not None:
            self.counts += other.counts


def _empty_counts(threshold: float) -> np.ndarray | None:
    if not (math.isfinite(threshold) and threshold > 0):
        return None  # score / threshold means nothing
    return np.zeros(len(_EDGES), dtype=np.int64)


@dataclass(frozen=True)
class TrafficStats:
    """A copy of one version's counts, safe to read without the lock."""

    version: int
    threshold: float
    calibrated_alarm_rate: float | None
    rows: int = 0
    """Rows scored (with a score)."""
    flagged: int = 0
    unscored: int = 0
    """Rows returned without a score (temporal warm-up rows)."""
    counts: tuple[int, ...] | None = None
    """Histogram of score / threshold over :data:`HISTOGRAM_EDGES`; None if threshold <= 0."""
    since: dt.datetime | None = None
    last: dt.datetime | None = None

    @classmethod
    def empty(cls, version: int, metadata: ModelMetadata) -> TrafficStats:
        counts = _empty_counts(metadata.threshold)
        return cls(
            version=version,
            threshold=metadata.threshold,
            calibrated_alarm_rate=calibrated_alarm_rate(metadata),
            counts=None if counts is None else tuple(int(c) for c in counts),
        )


@dataclass
class _VersionTraffic:
    version: int
    threshold: float
    calibrated_alarm_rate: float | None
    tally: _Tally
    since: dt.datetime
    last: dt.datetime

    def stats(self) -> TrafficStats:
        counts = self.tally.counts
        return TrafficStats(
            version=self.version,
            threshold=self.threshold,
            calibrated_alarm_rate=self.calibrated_alarm_rate,
            rows=self.tally.rows,
            flagged=self.tally.flagged,
            unscored=self.tally.unscored,
            counts=None if counts is None else tuple(int(c) for c in counts),
            since=self.since,
            last=self.last,
        )


@dataclass
class Recorder:
    """One file's traffic: call it with each scored chunk, :meth:`commit` once the whole file
    was scored. Used by one thread (the one scoring the file); an uncommitted recorder is
    simply dropped."""

    monitor: TrafficMonitor
    version: int
    threshold: float
    calibrated_alarm_rate: float | None
    tally: _Tally = field(init=False)
    committed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.tally = _Tally(counts=_empty_counts(self.threshold))

    def __call__(self, scores: np.ndarray, flags: np.ndarray) -> None:
        """Add one chunk: ``scores`` float (NaN = unscored), ``flags`` bool (None where
        unscored, as the temporal path returns them)."""
        scores = np.asarray(scores, dtype=np.float64)
        scored = ~np.isnan(scores)
        n_scored = int(np.count_nonzero(scored))
        tally = self.tally
        tally.unscored += scores.size - n_scored
        if n_scored == 0:
            return
        flags = np.asarray(flags)
        if n_scored < scores.size:
            scores, flags = scores[scored], flags[scored]
        tally.rows += n_scored
        tally.flagged += int(np.count_nonzero(flags.astype(bool, copy=False)))
        if tally.counts is not None:
            ratios = scores / self.threshold
            bins = np.searchsorted(_EDGES, ratios, side="right") - 1
            np.clip(bins, 0, len(_EDGES) - 1, out=bins)
            tally.counts += np.bincount(bins, minlength=len(_EDGES))

    def commit(self) -> None:
        """The file was scored and its reply produced: count its rows as served (once)."""
        if not self.committed:
            self.committed = True
            self.monitor._merge(self)


class TrafficMonitor:
    """Per-version served-traffic counts of one service process (thread-safe)."""

    def __init__(
        self, metrics: ApiMetrics | None = None, max_versions: int = MAX_TRACKED_VERSIONS
    ) -> None:
        self._lock = threading.Lock()
        self._versions: dict[int, _VersionTraffic] = {}
        self._metrics = metrics
        self._max_versions = max_versions

    def recorder(self, model: LoadedModel) -> Recorder:
        """A recorder for one file scored by ``model``."""
        return Recorder(
            self,
            model.version,
            float(model.threshold),
            calibrated_alarm_rate(model.metadata),
        )

    def stats(self, version: int) -> TrafficStats | None:
        with self._lock:
            found = self._versions.get(version)
            return found.stats() if found is not None else None

    def versions(self) -> list[int]:
        with self._lock:
            return sorted(self._versions)

    def _merge(self, recorder: Recorder) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        evicted: list[int] = []
        with self._lock:
            entry = self._versions.get(recorder.version)
            if entry is None:
                entry = _VersionTraffic(
                    version=recorder.version,
                    threshold=recorder.threshold,
                    calibrated_alarm_rate=recorder.calibrated_alarm_rate,
                    tally=_Tally(counts=_empty_counts(recorder.threshold)),
                    since=now,
                    last=now,
                )
                self._versions[recorder.version] = entry
                while len(self._versions) > self._max_versions:
                    oldest = min(self._versions.values(), key=lambda v: v.last)
                    del self._versions[oldest.version]
                    evicted.append(oldest.version)
            entry.tally.add(recorder.tally)
            entry.last = now
            rows, flagged, calibrated = (
                entry.tally.rows,
                entry.tally.flagged,
                entry.calibrated_alarm_rate,
            )
        if self._metrics is not None:
            self._metrics.served(
                recorder.version,
                rows=recorder.tally.rows,
                flagged=recorder.tally.flagged,
                ratio=(flagged / rows) / calibrated if rows and calibrated else None,
            )
            for version in evicted:
                self._metrics.forget_served(version)


def assess(stats: TrafficStats, *, max_ratio: float, min_rows: int) -> Assessment:
    """The observed alarm rate against ``max_ratio`` x the calibrated one (see the module)."""
    return assess_counts(
        stats.version,
        stats.rows,
        stats.flagged,
        stats.calibrated_alarm_rate,
        max_ratio=max_ratio,
        min_rows=min_rows,
        unscored=stats.unscored,
    )
