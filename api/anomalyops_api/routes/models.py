"""``/v1/models`` (listing) and ``/admin/*`` (reload, pin, unpin)."""

from __future__ import annotations

import time

import anyio
from fastapi import APIRouter, Path
from fastapi.responses import Response

from anomalyops_api.deps import (
    ActiveModelDep,
    AdminDep,
    CallerDep,
    RegistryDep,
    SettingsDep,
    TrafficDep,
)
from anomalyops_api.errors import Conflict, NotFound
from anomalyops_api.model import ModelLoadError, ModelMetadata
from anomalyops_api.model_schemas import (
    ActiveModelResponse,
    AlarmRateInterval,
    FailedVersion,
    ModelsResponse,
    ModelVersionInfo,
    PinRequest,
    ReloadResponse,
    ScoreHistogram,
    TrafficResponse,
)
from anomalyops_api.registry import ModelRegistry, RefreshResult, VersionNotFound
from anomalyops_api.reports import CONTENT_SECURITY_POLICY, read_report, report_name
from anomalyops_api.routes.common import error_responses
from anomalyops_api.serving_dir import scan_versions
from anomalyops_api.settings import ApiSettings
from anomalyops_api.traffic import HISTOGRAM_EDGES, TrafficMonitor, TrafficStats, assess

router = APIRouter(tags=["models"])
admin = APIRouter(prefix="/admin", tags=["admin"])


def _describe(registry: ModelRegistry) -> ModelsResponse:
    active = registry.active
    infos = []
    for version in sorted(scan_versions(registry.model_dir), key=lambda v: -v.version):
        info = ModelVersionInfo(version=version.version, state="incomplete", complete=False)
        if version.complete:
            info.complete = True
            metadata = registry.metadata(version)
            if isinstance(metadata, str):
                info.state, info.error = "unreadable", metadata
            else:
                info.state, info.metadata = "available", metadata
                info.evaluation_report_url = _report_url(metadata)
            failure = registry.failures.get(version.version)
            if failure is not None:
                info.state, info.error = "failed", failure.error
                info.failed_attempts = failure.attempts
        if active is not None and active.version == version.version:
            info.state, info.loaded_at, info.metadata = "serving", active.loaded_at, active.metadata
            info.evaluation_report_url = _report_url(active.metadata)
        infos.append(info)
    if active is not None and all(i.version != active.version for i in infos):
        # Deleted from disk but still in memory (nothing else loadable): say so.
        infos.insert(
            0,
            ModelVersionInfo(
                version=active.version,
                state="serving",
                complete=False,
                metadata=active.metadata,
                loaded_at=active.loaded_at,
                error="directory no longer on disk",
            ),
        )
    return ModelsResponse(
        model_dir=str(registry.model_dir),
        policy="pinned" if registry.pinned is not None else "latest",
        active_version=active.version if active else None,
        pinned_version=registry.pinned,
        pin_error=registry.pin_error,
        last_scan_at=registry.last_scan_at,
        versions=infos,
    )


@router.get(
    "/v1/models",
    summary="Model versions on disk and the one served",
    responses=error_responses(401),
)
async def list_models(_caller: CallerDep, registry: RegistryDep) -> ModelsResponse:
    """Every integer-named version directory, newest first, with its metadata (training
    spans, threshold, metrics) and state; which one is served and whether it is pinned."""
    return await anyio.to_thread.run_sync(_describe, registry)


def _report_url(metadata: ModelMetadata) -> str | None:
    return f"/v1/models/{metadata.version}/report" if report_name(metadata) else None


def _report(registry: ModelRegistry, version: int) -> bytes:
    for found in scan_versions(registry.model_dir):
        if found.version == version and found.complete:
            metadata = registry.metadata(found)
            if isinstance(metadata, str):
                raise NotFound(f"model version {version}: {metadata}")
            return read_report(found.path, metadata)
    raise NotFound(f"no complete model version {version} in the serving directory")


@router.get(
    "/v1/models/{version}/report",
    summary="The evaluation gate's HTML report for a version",
    response_class=Response,
    responses={
        200: {"content": {"text/html": {"schema": {"type": "string"}}}},
        **error_responses(401, 404),
    },
)
async def evaluation_report(
    _caller: CallerDep,
    registry: RegistryDep,
    version: int = Path(ge=0, le=2**63 - 1, description="A version on disk"),
) -> Response:
    """Score histograms with the threshold, the PR curve (with labels), per-feature
    contributions and the blessing decision, as one static page (no script, no CDN)."""
    body = await anyio.to_thread.run_sync(_report, registry, version)
    return Response(
        body,
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
        },
    )


def _metadata_of(registry: ModelRegistry, version: int) -> ModelMetadata | None:
    """The metadata of ``version`` if it is served or complete and readable on disk."""
    active = registry.active
    if active is not None and active.version == version:
        return active.metadata
    for found in scan_versions(registry.model_dir):
        if found.version == version and found.complete:
            metadata = registry.metadata(found)
            return None if isinstance(metadata, str) else metadata
    return None


def _traffic(
    registry: ModelRegistry, monitor: TrafficMonitor, settings: ApiSettings, version: int
) -> TrafficResponse:
    stats = monitor.stats(version)
    if stats is None:
        metadata = _metadata_of(registry, version)
        if metadata is None:
            raise NotFound(
                f"model version {version} is not in the serving directory and has served no "
                "traffic since the service started",
            )
        stats = TrafficStats.empty(version, metadata)
    verdict = assess(
        stats, max_ratio=settings.traffic_max_alarm_ratio, min_rows=settings.traffic_min_rows
    )
    interval = None
    if verdict.interval is not None:
        interval = AlarmRateInterval(lo=verdict.interval[0], hi=verdict.interval[1])
    histogram = None
    if stats.counts is not None:
        histogram = ScoreHistogram(edges=list(HISTOGRAM_EDGES), counts=list(stats.counts))
    return TrafficResponse(
        version=stats.version,
        threshold=stats.threshold,
        rows=stats.rows,
        flagged=stats.flagged,
        unscored=stats.unscored,
        alarm_rate=verdict.alarm_rate,
        alarm_rate_interval=interval,
        calibrated_alarm_rate=stats.calibrated_alarm_rate,
        max_alarm_ratio=settings.traffic_max_alarm_ratio,
        max_alarm_rate=verdict.max_alarm_rate,
        min_rows=settings.traffic_min_rows,
        status=verdict.status,
        histogram=histogram,
        since=stats.since,
        last=stats.last,
        summary=verdict.summary,
    )


@router.get(
    "/v1/models/{version}/traffic",
    summary="The alarm rate a version served, against the rate it was calibrated for",
    responses=error_responses(401, 404),
)
async def model_traffic(
    _caller: CallerDep,
    registry: RegistryDep,
    monitor: TrafficDep,
    settings: SettingsDep,
    version: int = Path(ge=0, le=2**63 - 1, description="A version on disk or that served"),
) -> TrafficResponse:
    """Rows this version scored for `POST /v1/score` and jobs (a file counts once it was
    scored whole; failed uploads do not), how many it flagged, a histogram of
    score / threshold, and whether the alarm rate is within `max_alarm_ratio` times the rate
    the model was calibrated for (1 - threshold_quantile): far more alarms than calibrated
    means the uploads no longer look like the training data. **Kept in memory: the counts
    start from zero when the service process starts** (and belong to this process only)."""
    return await anyio.to_thread.run_sync(_traffic, registry, monitor, settings, version)


@router.get(
    "/v1/models/active",
    summary="The served version and the columns it needs",
    responses=error_responses(401, 503),
)
async def active_model(_caller: CallerDep, model: ActiveModelDep) -> ActiveModelResponse:
    return ActiveModelResponse(
        version=model.version,
        threshold=model.threshold,
        feature_columns=model.spec.feature_names,
        key_columns=model.spec.key_columns,
        loaded_at=model.loaded_at,
        metadata=model.metadata,
    )


def _reply(result: RefreshResult, registry: ModelRegistry, started: float) -> ReloadResponse:
    return ReloadResponse(
        model_version=result.version,
        previous_version=result.previous_version,
        changed=result.changed,
        pinned_version=registry.pinned,
        failed_versions=[FailedVersion(version=v, error=e) for v, e in result.failed.items()],
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )


@admin.post(
    "/reload", summary="Load the newest complete version now", responses=error_responses(401, 403)
)
async def reload_models(_admin: AdminDep, registry: RegistryDep) -> ReloadResponse:
    """What the pipeline calls after a push. Scans the serving directory at once (also
    retrying versions that failed before), loads and warms up the newest complete version
    and swaps to it, then answers with the version now served. A version that fails to load
    is listed in `failed_versions` and the previous one keeps serving. While a version is
    pinned, this reloads nothing newer."""
    started = time.perf_counter()
    result = await anyio.to_thread.run_sync(lambda: registry.refresh(retry_failed=True))
    return _reply(result, registry, started)


@admin.post(
    "/pin",
    summary="Serve one version (rollback) until unpinned",
    responses=error_responses(400, 401, 403, 404, 409),
)
async def pin_model(body: PinRequest, _admin: AdminDep, registry: RegistryDep) -> ReloadResponse:
    """Loads `version` (if not already served), swaps to it and stops following the newest.
    The pin is persisted under `state_dir`, so it survives a restart."""
    started = time.perf_counter()
    previous = registry.active.version if registry.active else None
    try:
        model = await anyio.to_thread.run_sync(registry.pin, body.version)
    except VersionNotFound as exc:
        raise NotFound(str(exc)) from None
    except ModelLoadError as exc:
        raise Conflict(f"version {body.version} failed to load: {exc}") from None
    result = RefreshResult(previous_version=previous, version=model.version)
    return _reply(result, registry, started)


@admin.post(
    "/unpin",
    summary="Follow the newest complete version again",
    responses=error_responses(401, 403),
)
async def unpin_model(_admin: AdminDep, registry: RegistryDep) -> ReloadResponse:
    started = time.perf_counter()
    result = await anyio.to_thread.run_sync(registry.unpin)
    return _reply(result, registry, started)
