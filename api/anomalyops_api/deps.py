"""Request dependencies: app-scoped objects and API-key checks, as ``Annotated`` aliases."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

import anyio
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from anomalyops_api.errors import Forbidden, Unauthenticated, Unavailable
from anomalyops_api.job_record import owner_of
from anomalyops_api.job_service import JobService
from anomalyops_api.limits import UploadGate
from anomalyops_api.metrics import ApiMetrics
from anomalyops_api.model import LoadedModel
from anomalyops_api.registry import ModelRegistry
from anomalyops_api.settings import ApiSettings
from anomalyops_api.traffic import TrafficMonitor

API_KEY_HEADER = "X-API-Key"

_api_key = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name="ApiKey",
    description="A scoring key from ANOMALYOPS_API_KEYS (the admin key works too).",
    auto_error=False,
)
_admin_key = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name="AdminKey",
    description="The admin key, ANOMALYOPS_API_ADMIN_KEY.",
    auto_error=False,
)


def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


def get_metrics(request: Request) -> ApiMetrics:
    return request.app.state.metrics


def get_jobs(request: Request) -> JobService:
    return request.app.state.jobs


def get_limiter(request: Request) -> anyio.CapacityLimiter:
    return request.app.state.scoring_limiter


def get_upload_gate(request: Request) -> UploadGate:
    return request.app.state.upload_gate


def get_traffic(request: Request) -> TrafficMonitor:
    return request.app.state.traffic


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
UploadGateDep = Annotated[UploadGate, Depends(get_upload_gate)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
JobsDep = Annotated[JobService, Depends(get_jobs)]
LimiterDep = Annotated[anyio.CapacityLimiter, Depends(get_limiter)]
TrafficDep = Annotated[TrafficMonitor, Depends(get_traffic)]


def get_active_model(registry: RegistryDep) -> LoadedModel:
    model = registry.active  # taken once: this request uses this version to the end
    if model is None:
        raise Unavailable(f"no model version loaded yet from {registry.model_dir}", retry_after=5)
    return model


ActiveModelDep = Annotated[LoadedModel, Depends(get_active_model)]


@dataclass(frozen=True)
class Caller:
    owner: str
    """Hash of the key (jobs are visible to the key that created them); '' when auth is off."""
    admin: bool


def _matches(given: str, secrets: list[str]) -> bool:
    # Compare against every key without short-circuit so timing says nothing about which.
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(given.encode(), secret.encode())
    return found


def _missing() -> Unauthenticated:
    return Unauthenticated(f"missing {API_KEY_HEADER} header")


def require_api_key(
    settings: SettingsDep, key: Annotated[str | None, Security(_api_key)]
) -> Caller:
    if settings.auth_open:
        return Caller(owner="", admin=settings.admin_open)
    if not key:
        raise _missing()
    admin = settings.admin_key is not None and _matches(
        key, [settings.admin_key.get_secret_value()]
    )
    if not admin and not _matches(key, [k.get_secret_value() for k in settings.keys]):
        raise Unauthenticated("invalid API key")
    return Caller(owner=owner_of(key), admin=admin)


def require_admin_key(
    settings: SettingsDep, key: Annotated[str | None, Security(_admin_key)]
) -> Caller:
    if settings.admin_open:
        return Caller(owner="", admin=True)
    assert settings.admin_key is not None
    if not key:
        raise _missing()
    if not _matches(key, [settings.admin_key.get_secret_value()]):
        if _matches(key, [k.get_secret_value() for k in settings.keys]):
            raise Forbidden("this endpoint needs the admin key, not a scoring key")
        raise Unauthenticated("invalid admin key")
    return Caller(owner=owner_of(key), admin=True)


CallerDep = Annotated[Caller, Depends(require_api_key)]
AdminDep = Annotated[Caller, Depends(require_admin_key)]
