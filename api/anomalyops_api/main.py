"""The app factory. Run: ``uvicorn anomalyops_api.main:create_app --factory``.

Importing this module is cheap (no TensorFlow): the model, and TensorFlow with it, is
loaded in :func:`lifespan`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import anyio
import pyarrow_hotfix  # noqa: F401 - CVE-2023-47248, before anything in this process reads Parquet
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from anomalyops import __version__
from anomalyops_api.errors import install_error_handlers
from anomalyops_api.job_service import JobService
from anomalyops_api.limits import UploadGate
from anomalyops_api.logging_config import (
    RequestContextMiddleware,
    configure_logging,
    set_served_version_source,
)
from anomalyops_api.metrics import ApiMetrics, MetricsMiddleware
from anomalyops_api.model import _tensorflow
from anomalyops_api.openapi import AllowHeaderMiddleware, truthful_openapi
from anomalyops_api.registry import ModelRegistry, watch
from anomalyops_api.routes import health, jobs, models, scoring, ui
from anomalyops_api.settings import ApiSettings
from anomalyops_api.traffic import TrafficMonitor
from anomalyops_api.uploads import sweep_spool

log = logging.getLogger(__name__)

PIN_FILE = "pinned_version.json"

DESCRIPTION = """
Batch scoring with the anomaly detector the retraining pipeline pushes.

* Upload CSV, gzip-compressed CSV or Parquet to **POST /v1/score** (sync) or
  **POST /v1/jobs** (async, for big files); get CSV or JSON back.
* The newest complete version in the serving directory is served and hot-reloaded with no
  downtime; **/v1/models** lists versions, **/admin/** reloads and pins (rollback).
* **/v1/models/{version}/traffic** compares the alarm rate of the rows a version served with
  the rate it was calibrated for (drift in the uploads shows up there first).
* Send `X-API-Key` (a scoring key; the admin key for `/admin/*`).
* **/ui** is an upload page for people: submit a file as a job, follow it, see the scores.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the served model before accepting traffic, then watch for new versions."""
    settings: ApiSettings = app.state.settings
    metrics: ApiMetrics = app.state.metrics
    settings.warn_if_open()
    registry = ModelRegistry(
        settings.model_dir,
        metrics=metrics,
        pin_file=settings.state_dir / PIN_FILE,
        retry_backoff_s=settings.load_retry_backoff_s,
        warmup_rows=settings.warmup_rows,
    )
    app.state.registry = registry
    set_served_version_source(partial(_served_version, app))
    limiter = anyio.CapacityLimiter(settings.max_concurrent_scoring)
    app.state.scoring_limiter = limiter
    gate = UploadGate(settings.max_concurrent_uploads, settings.max_key_upload_bytes)
    app.state.upload_gate = gate
    if settings.spool_dir is not None:
        settings.spool_dir.mkdir(parents=True, exist_ok=True)
    result = await anyio.to_thread.run_sync(registry.refresh)
    if result.version is None:
        # Start anyway: /readyz says 503 and the watcher serves the first push. Import
        # TensorFlow meanwhile (10+ s) so that first push is not delayed by it.
        log.warning("no loadable model version in %s yet; not ready", settings.model_dir)
        threading.Thread(target=_tensorflow, name="import-tensorflow", daemon=True).start()
    job_service = JobService(settings, registry, metrics, limiter, traffic=app.state.traffic)
    app.state.jobs = job_service
    await job_service.start()
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch(registry, settings.poll_interval_s, stop))
    sweeper = asyncio.create_task(_sweep_spool_forever(settings.spool_dir, gate, stop))
    try:
        yield
    finally:
        stop.set()
        await job_service.stop()
        await asyncio.gather(watcher, sweeper)
        set_served_version_source(None)


def _served_version(app: FastAPI) -> int | None:
    """The version served now (None before the lifespan loaded one): for log records."""
    registry: ModelRegistry | None = getattr(app.state, "registry", None)
    model = registry.active if registry is not None else None
    return model.version if model is not None else None


async def _sweep_spool_forever(
    spool_dir: Path | None, gate: UploadGate, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            removed = await anyio.to_thread.run_sync(
                partial(sweep_spool, spool_dir, live=gate.live_dirs())
            )
            if removed:
                log.warning("removed %d stale upload dirs from the spool dir", removed)
        except Exception:
            log.exception("spool sweep failed")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=600)


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """Build the app; ``settings`` defaults to :class:`ApiSettings` from the environment."""
    settings = settings or ApiSettings()
    # Here, not at import: uvicorn --factory has set up its loggers by now, and this routes
    # them (and ours) through one handler and format (logging_config.py).
    configure_logging(settings.resolved_log_format, settings.log_level)
    common = {
        "title": "anomalyops scoring API",
        "version": __version__,
        "description": DESCRIPTION,
        "lifespan": lifespan,
    }
    if settings.docs_on:
        # Swagger UI and ReDoc assets from the fastapi-offline package: no CDN needed.
        app = FastAPIOffline(**common)
    else:
        app = FastAPI(**common, docs_url=None, redoc_url=None, openapi_url=None)
    app.openapi = partial(truthful_openapi, app)  # type: ignore[method-assign]
    app.state.settings = settings
    app.state.metrics = ApiMetrics()
    # Served-traffic counts per version: in memory, from zero at every process start.
    app.state.traffic = TrafficMonitor(app.state.metrics)
    install_error_handlers(app)
    app.add_middleware(AllowHeaderMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.include_router(scoring.router)
    app.include_router(jobs.router)
    app.include_router(models.router)
    app.include_router(models.admin)
    app.include_router(health.router)
    app.include_router(ui.router)  # /ui: the upload page, static files from the package
    # Outermost, outside Starlette's error middleware: 500 replies carry the id too.
    build_stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: RequestContextMiddleware(  # type: ignore[method-assign]
        build_stack(), version_source=partial(_served_version, app)
    )
    return app
