"""Prometheus metrics, one :class:`CollectorRegistry` per app (tests build many apps)."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anomalyops.model_contract import CONTRACT_METRICS

if TYPE_CHECKING:
    from anomalyops.model_contract import ModelMetadata

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# Push to served spans the API's poll interval (or POST /admin/reload) plus a model load and
# warm-up: seconds normally, minutes when a reload failed and backed off.
PUSH_TO_SERVED_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
MAX_MODEL_VERSIONS = 16
"""Per-version model gauges kept for this many recently served versions (bounded labels)."""


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # process_* (CPU seconds, resident memory, open fds, start time; Linux /proc) and
        # python_info, as the default registry would have them.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.requests = Counter(
            "anomalyops_api_requests",
            "HTTP requests by route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "anomalyops_api_request_duration_seconds",
            "HTTP request latency (until the last body byte is sent).",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rows_scored = Counter(
            "anomalyops_api_rows_scored",
            "Rows scored, by path (sync request or async job).",
            ["source"],
            registry=r,
        )
        self.scoring_seconds = Histogram(
            "anomalyops_api_scoring_duration_seconds",
            "Time to parse, score and write one file.",
            ["source"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upload_bytes = Counter(
            "anomalyops_api_upload_bytes", "Bytes of uploaded files.", registry=r
        )
        self.model_version = Gauge(
            "anomalyops_api_model_version",
            "The model version being served (0 = none).",
            registry=r,
        )
        self.model_pinned = Gauge(
            "anomalyops_api_model_pinned", "1 while a version is pinned.", registry=r
        )
        self.model_pin_broken = Gauge(
            "anomalyops_api_model_pin_broken",
            "1 while the pinned version is missing or fails to load (another version serves).",
            registry=r,
        )
        self.reloads = Counter(
            "anomalyops_api_model_reloads", "Successful model version swaps.", registry=r
        )
        self.reload_failures = Counter(
            "anomalyops_api_model_reload_failures",
            "Model versions that failed to load (each attempt).",
            registry=r,
        )
        self.load_seconds = Histogram(
            "anomalyops_api_model_load_duration_seconds",
            "Time to load and warm up a model version.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.jobs_finished = Counter(
            "anomalyops_api_jobs_finished",
            "Async jobs that reached a final state.",
            ["status"],
            registry=r,
        )
        self.jobs_queued = Gauge(
            "anomalyops_api_jobs_queued", "Async jobs waiting for a worker.", registry=r
        )
        # Served traffic per model version (traffic.py). Label values are versions only,
        # at most traffic.MAX_TRACKED_VERSIONS of them (the least recently seen is dropped).
        self.served_rows = Counter(
            "anomalyops_api_served_rows",
            "Rows scored with a score and served (a file counts once it was scored whole).",
            ["version"],
            registry=r,
        )
        self.served_alarms = Counter(
            "anomalyops_api_served_alarms",
            "Served rows flagged as anomalies.",
            ["version"],
            registry=r,
        )
        self.served_alarm_ratio = Gauge(
            "anomalyops_api_served_alarm_ratio",
            "Observed alarm rate since start-up / the rate the version was calibrated for "
            "(1 - threshold_quantile); absent for versions without one.",
            ["version"],
            registry=r,
        )

        # What each served version promised (anomalyops_model.json, docs/model-contract.md),
        # so dashboards can set the observed alarm rate beside the calibrated one.
        self.model_threshold = Gauge(
            "anomalyops_api_model_threshold",
            "The score threshold of a served version (score > threshold is an anomaly).",
            ["version"],
            registry=r,
        )
        self.model_calibrated_alarm_rate = Gauge(
            "anomalyops_api_model_calibrated_alarm_rate",
            "The alarm rate a served version was calibrated for (1 - threshold_quantile).",
            ["version"],
            registry=r,
        )
        self.model_eval_metric = Gauge(
            "anomalyops_api_model_eval_metric",
            "The evaluation gate's metrics of a served version (present when evaluation had "
            "labels): auc_pr, f1, false_alarm_rate, missed_alarm_rate.",
            ["version", "metric"],
            registry=r,
        )
        self.model_pushed_timestamp = Gauge(
            "anomalyops_api_model_pushed_timestamp_seconds",
            "When the Pusher published a served version (its metadata's created_at).",
            ["version"],
            registry=r,
        )
        self.model_served_timestamp = Gauge(
            "anomalyops_api_model_served_timestamp_seconds",
            "When this process started serving a version.",
            ["version"],
            registry=r,
        )
        self.model_push_to_served = Gauge(
            "anomalyops_api_model_push_to_served_seconds",
            "Push to served latency of a version this process hot-reloaded.",
            ["version"],
            registry=r,
        )
        self.push_to_served = Histogram(
            "anomalyops_api_push_to_served_seconds",
            "Push to served latency of versions pushed while this process was running.",
            buckets=PUSH_TO_SERVED_BUCKETS,
            registry=r,
        )
        self.started_at = dt.datetime.now(dt.timezone.utc)
        self._model_versions: OrderedDict[str, list[str]] = OrderedDict()
        """Served version label -> the eval metric names set for it (to remove them later)."""
        self._measured: dict[str, float] = {}
        """Push to served latency per version, observed once: a version served again later
        (after an unpin or a rollback) was not waiting for a reload all that time."""

    def model_served(self, metadata: ModelMetadata, version: int, served_at: dt.datetime) -> None:
        """Record a version the registry just swapped in.

        Push to served is measured only for versions pushed after this process started: a
        version that was already on disk at start-up waited for the API, not for the reload.
        """
        label = str(version)
        self._forget_model(label)  # a re-served version (unpin, rollback) starts clean
        while len(self._model_versions) >= MAX_MODEL_VERSIONS:
            self._forget_model(next(iter(self._model_versions)))
        self.model_threshold.labels(label).set(metadata.threshold)
        if metadata.threshold_quantile is not None:
            self.model_calibrated_alarm_rate.labels(label).set(1 - metadata.threshold_quantile)
        # Only the contract's names, so a Pusher's extra keys cannot grow the label set.
        evaluated = []
        for name in CONTRACT_METRICS:
            value = (metadata.metrics or {}).get(name)
            if isinstance(value, (int, float)) and value == value:  # None and NaN say nothing
                self.model_eval_metric.labels(label, name).set(value)
                evaluated.append(name)
        self._model_versions[label] = evaluated
        self.model_served_timestamp.labels(label).set(served_at.timestamp())
        pushed_at = _parse_time(metadata.created_at)
        if pushed_at is None:
            return
        self.model_pushed_timestamp.labels(label).set(pushed_at.timestamp())
        if label not in self._measured:
            latency = (served_at - pushed_at).total_seconds()
            # created_at has whole seconds, so a fast reload can look up to 1 s early.
            if pushed_at < self.started_at.replace(microsecond=0) or latency <= -1:
                return
            self._measured[label] = max(latency, 0.0)
            self.push_to_served.observe(self._measured[label])
        self.model_push_to_served.labels(label).set(self._measured[label])

    def _forget_model(self, label: str) -> None:
        evaluated = self._model_versions.pop(label, None)
        if evaluated is None:
            return
        for name in evaluated:
            self.model_eval_metric.remove(label, name)
        for metric in (
            self.model_threshold,
            self.model_calibrated_alarm_rate,
            self.model_pushed_timestamp,
            self.model_served_timestamp,
            self.model_push_to_served,
        ):
            with contextlib.suppress(KeyError):  # never set (no quantile, no created_at)
                metric.remove(label)

    def served(self, version: int, *, rows: int, flagged: int, ratio: float | None) -> None:
        label = str(version)
        self.served_rows.labels(label).inc(rows)
        self.served_alarms.labels(label).inc(flagged)
        if ratio is not None:
            self.served_alarm_ratio.labels(label).set(ratio)

    def forget_served(self, version: int) -> None:
        label = str(version)
        for metric in (self.served_rows, self.served_alarms, self.served_alarm_ratio):
            with contextlib.suppress(KeyError):  # never set (e.g. the ratio gauge)
                metric.remove(label)


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    # A naive timestamp is taken as UTC, as the Pusher writes UTC.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware) so streamed replies are not buffered and the
    latency covers the whole body. Routes are labelled by template, not by raw path, so job
    ids do not explode the label set."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.request_seconds.labels(method, template).observe(
                time.perf_counter() - started
            )
