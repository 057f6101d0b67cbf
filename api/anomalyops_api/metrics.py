"""Prometheus metrics, one :class:`CollectorRegistry` per app (tests build many apps)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
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
