"""Prometheus metrics, one :class:`CollectorRegistry` per app (tests build many apps)."""

from __future__ import annotations

import contextlib
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


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
