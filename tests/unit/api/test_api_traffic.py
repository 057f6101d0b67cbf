"""Served-traffic monitoring: counts, histogram, commit vs discard, the Wilson band."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pytest

from anomalyops.alarm_band import TrafficStatus, wilson_interval
from anomalyops_api.errors import ApiError
from anomalyops_api.metrics import ApiMetrics
from anomalyops_api.model import ModelMetadata
from anomalyops_api.scoring import InputFormat, OutputFormat, score_file
from anomalyops_api.traffic import (
    HISTOGRAM_EDGES,
    TrafficMonitor,
    TrafficStats,
    assess,
    calibrated_alarm_rate,
)
from tests.helpers.api import csv_bytes, expected, make_frame, numpy_model


def metric(metrics: ApiMetrics, name: str, version: int) -> float | None:
    return metrics.registry.get_sample_value(name, {"version": str(version)})


def stats(rows: int, flagged: int, calibrated: float | None = 0.01) -> TrafficStats:
    return TrafficStats(
        version=7, threshold=3.0, calibrated_alarm_rate=calibrated, rows=rows, flagged=flagged
    )


def test_histogram_counts_score_over_threshold_per_bin() -> None:
    monitor = TrafficMonitor()
    recorder = monitor.recorder(numpy_model(4, threshold=2.0))
    # ratios: -0.5 (first bin), 0, 0.2, 0.25 (edge: upper bin), 1.0, 1.9, 2.0, 9.99, 10, 1e6, inf
    scores = np.array([-1.0, 0.0, 0.4, 0.5, 2.0, 3.8, 4.0, 19.98, 20.0, 2e6, np.inf], np.float32)
    recorder(scores, scores > 2.0)
    recorder(np.array([1.0], np.float32), np.array([False]))  # a second chunk adds up
    recorder.commit()
    got = monitor.stats(4)
    assert got is not None
    assert (got.rows, got.flagged, got.unscored) == (12, 6, 0)
    want = dict.fromkeys(HISTOGRAM_EDGES, 0)
    for edge in (0.0, 0.0, 0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 5.0, 10.0, 10.0, 10.0):
        want[edge] += 1
    assert got.counts == tuple(want.values())
    assert sum(got.counts) == got.rows
    assert got.since is not None and got.last is not None and got.since.tzinfo is not None


def test_histogram_matches_numpy_on_a_real_file(tmp_path: Path) -> None:
    model = numpy_model(2, threshold=3.0)
    frame = make_frame(5000)
    src = tmp_path / "in.csv"
    src.write_bytes(csv_bytes(frame))
    monitor = TrafficMonitor()
    recorder = monitor.recorder(model)
    chunks: list[int] = []

    def spy(scores: np.ndarray, flags: np.ndarray) -> None:
        chunks.append(len(scores))
        recorder(scores, flags)

    score_file(
        src,
        InputFormat.CSV,
        model,
        tmp_path / "out.csv",
        OutputFormat.CSV,
        csv_block_bytes=64 * 1024,
        on_scores=spy,
    )
    assert len(chunks) > 1 and sum(chunks) == 5000  # called once per chunk, not per row
    recorder.commit()
    got = monitor.stats(2)
    want = expected(frame)
    ratios = want / 3.0
    edges = [*HISTOGRAM_EDGES, np.inf]
    assert got.counts == tuple(np.histogram(np.clip(ratios, 0, None), bins=edges)[0])
    assert (got.rows, got.flagged) == (5000, int((want > 3.0).sum()))


def test_nan_scores_count_as_unscored_not_as_rows() -> None:
    monitor = TrafficMonitor()
    recorder = monitor.recorder(numpy_model(5, threshold=1.0))
    scores = np.array([np.nan, np.nan, 0.5, 2.0, np.nan], np.float32)
    flags = np.array([None, None, False, True, None], dtype=object)  # as the temporal path
    recorder(scores, flags)
    recorder(np.full(3, np.nan, np.float32), np.full(3, None, dtype=object))  # all warm-up
    recorder.commit()
    got = monitor.stats(5)
    assert (got.rows, got.flagged, got.unscored) == (2, 1, 6)
    assert sum(got.counts) == 2


def test_warmup_rows_of_a_temporal_file_are_unscored(tmp_path: Path) -> None:
    from tests.unit.api.test_api_temporal import temporal_model

    model = temporal_model()
    src = tmp_path / "in.csv"
    src.write_bytes(csv_bytes(make_frame(300)))
    monitor = TrafficMonitor()
    recorder = monitor.recorder(model)
    score_file(
        src, InputFormat.CSV, model, tmp_path / "o.csv", OutputFormat.CSV, warmup=True,
        on_scores=recorder,
    )  # fmt: skip
    recorder.commit()
    got = monitor.stats(model.version)
    assert (got.rows, got.unscored) == (300 - 3 * 29, 3 * 29)


def test_only_committed_recorders_count_and_a_failed_file_never_does(tmp_path: Path) -> None:
    metrics = ApiMetrics()
    monitor = TrafficMonitor(metrics)
    model = numpy_model(6, threshold=3.0)
    discarded = monitor.recorder(model)
    discarded(np.ones(10, np.float32) * 5, np.ones(10, bool))
    assert monitor.stats(6) is None  # not committed: nothing served
    # A file with a bad cell after the first chunks: the recorder saw rows, the file failed.
    frame = make_frame(3000).astype({"vibration": object})
    frame.loc[2500, "vibration"] = "broken"
    src = tmp_path / "in.csv"
    src.write_bytes(csv_bytes(frame))
    failed = monitor.recorder(model)
    with pytest.raises(ApiError):
        score_file(
            src, InputFormat.CSV, model, tmp_path / "o.csv", OutputFormat.CSV,
            csv_block_bytes=64 * 1024, on_scores=failed,
        )  # fmt: skip
    assert failed.tally.rows > 0  # chunks before the bad one were scored ...
    assert monitor.stats(6) is None  # ... but never committed
    assert metric(metrics, "anomalyops_api_served_rows_total", 6) is None
    ok = monitor.recorder(model)
    ok(np.array([1.0, 5.0], np.float32), np.array([False, True]))
    ok.commit()
    ok.commit()  # twice is once
    assert (monitor.stats(6).rows, monitor.stats(6).flagged) == (2, 1)
    assert metric(metrics, "anomalyops_api_served_rows_total", 6) == 2
    assert metric(metrics, "anomalyops_api_served_alarms_total", 6) == 1
    assert metric(metrics, "anomalyops_api_served_alarm_ratio", 6) == pytest.approx(0.5 / 0.01)


def test_concurrent_commits_add_up() -> None:
    monitor = TrafficMonitor()
    model = numpy_model(8, threshold=1.0)

    def work() -> None:
        for _ in range(200):
            recorder = monitor.recorder(model)
            recorder(np.array([0.5, 2.0, 3.0], np.float32), np.array([False, True, True]))
            recorder.commit()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = monitor.stats(8)
    assert (got.rows, got.flagged, sum(got.counts)) == (2400, 1600, 2400)


def test_no_histogram_when_the_threshold_is_not_positive() -> None:
    monitor = TrafficMonitor()
    recorder = monitor.recorder(numpy_model(9, threshold=0.0))
    recorder(np.array([0.5, -1.0], np.float32), np.array([True, False]))
    recorder.commit()
    got = monitor.stats(9)
    assert got.counts is None and (got.rows, got.flagged) == (2, 1)


def test_versions_are_bounded_and_their_metrics_dropped() -> None:
    metrics = ApiMetrics()
    monitor = TrafficMonitor(metrics, max_versions=3)
    for version in range(1, 6):
        recorder = monitor.recorder(numpy_model(version))
        recorder(np.array([1.0], np.float32), np.array([False]))
        recorder.commit()
    assert monitor.versions() == [3, 4, 5]
    assert metric(metrics, "anomalyops_api_served_rows_total", 1) is None
    assert metric(metrics, "anomalyops_api_served_rows_total", 5) == 1


def test_calibrated_rate_comes_from_threshold_quantile() -> None:
    base = numpy_model(1).metadata.model_dump()
    assert calibrated_alarm_rate(ModelMetadata(**base)) == pytest.approx(0.01)
    assert calibrated_alarm_rate(ModelMetadata(**(base | {"threshold_quantile": None}))) is None
    assert calibrated_alarm_rate(ModelMetadata(**(base | {"threshold_quantile": 1.2}))) == 0.0


def test_wilson_interval() -> None:
    lo, hi = wilson_interval(0, 1000)
    assert lo == 0.0 and 0 < hi < 0.01
    lo, hi = wilson_interval(1000, 1000)
    assert hi == 1.0 and 0.99 < lo < 1.0
    # scipy.stats.binomtest(300, 1000).proportion_ci(0.99, "wilson")
    assert wilson_interval(300, 1000) == pytest.approx((0.26409079192026474, 0.3385456740410979))
    assert wilson_interval(3612, 12000) == pytest.approx((0.2903266887696293, 0.3118932470300304))
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("rows", "flagged", "calibrated", "status"),
    [
        (0, 0, 0.01, TrafficStatus.NO_TRAFFIC),
        (0, 0, None, TrafficStatus.NO_TRAFFIC),
        (5000, 1500, None, TrafficStatus.NOT_CALIBRATED),
        (999, 999, 0.01, TrafficStatus.TOO_FEW_ROWS),
        (1000, 10, 0.01, TrafficStatus.WITHIN_BAND),  # exactly as calibrated
        (1000, 0, 0.01, TrafficStatus.WITHIN_BAND),  # fewer alarms is never "above"
        (1000, 300, 0.01, TrafficStatus.ABOVE_BAND),  # 30 % against a 5 % band top
        # 6 % observed, 5 % band top: the interval's lower end (4.3 %) is inside: not yet
        (1000, 60, 0.01, TrafficStatus.WITHIN_BAND),
        # the same 6 % over 100k rows is sure: above
        (100_000, 6000, 0.01, TrafficStatus.ABOVE_BAND),
        (1000, 0, 0.0, TrafficStatus.WITHIN_BAND),  # calibrated for 0: no alarm is fine
        (1000, 1, 0.0, TrafficStatus.ABOVE_BAND),  # ... any sure alarm is above
        (5000, 5000, 0.5, TrafficStatus.WITHIN_BAND),  # band capped at 100 %
    ],
)
def test_band_status(rows, flagged, calibrated, status) -> None:
    verdict = assess(stats(rows, flagged, calibrated), max_ratio=5.0, min_rows=1000)
    assert verdict.status is status, verdict.summary
    assert verdict.summary.startswith("version 7: ")
    if rows:
        assert verdict.alarm_rate == flagged / rows
        lo, hi = verdict.interval
        assert lo <= verdict.alarm_rate <= hi
    else:
        assert verdict.alarm_rate is None and verdict.interval is None
    if calibrated is not None:
        assert verdict.max_alarm_rate == min(1.0, 5.0 * calibrated)
    if status is TrafficStatus.ABOVE_BAND:
        assert "ABOVE" in verdict.summary


def test_summary_reads_like_a_sentence() -> None:
    verdict = assess(stats(12_000, 3612), max_ratio=5.0, min_rows=1000)
    assert verdict.summary == (
        "version 7: 30.10% of 12,000 rows flagged (99% interval 29.03%-31.19%); calibrated "
        "for 1.00%, band up to 5.00%: ABOVE the band, the data has likely drifted"
    )
    assert not math.isnan(verdict.alarm_rate)
