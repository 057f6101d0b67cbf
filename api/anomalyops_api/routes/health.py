"""Liveness, readiness and Prometheus metrics (no API key: probes and scrapers)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from anomalyops_api.deps import MetricsDep, RegistryDep
from anomalyops_api.schemas import HealthResponse, ReadyResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> HealthResponse:
    return HealthResponse()


@router.get(
    "/readyz",
    summary="Readiness: a model version is loaded",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse, "description": "No model loaded yet."}},
)
async def readyz(registry: RegistryDep) -> ReadyResponse | Response:
    model = registry.active
    if model is None:
        body = ReadyResponse(
            status="not ready",
            model_version=None,
            detail=f"no model version loaded from {registry.model_dir}",
        )
        return JSONResponse(body.model_dump(), status_code=503)
    # Ready (a model serves), but a broken pin is worth a look: say so.
    return ReadyResponse(status="ready", model_version=model.version, detail=registry.pin_error)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Text exposition."}},
)
async def metrics(app_metrics: MetricsDep) -> Response:
    return Response(generate_latest(app_metrics.registry), media_type=CONTENT_TYPE_LATEST)
