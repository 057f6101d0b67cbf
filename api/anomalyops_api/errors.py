"""The one place that turns a failure into an HTTP reply.

Code elsewhere raises an :class:`ApiError` subclass that says *what* went wrong (its ``kind``
plus fields such as ``row``, ``column`` or ``limit``); :data:`STATUS` here decides the status
code, so scoring, uploads, limits and jobs stay free of HTTP. Every reply has one shape:
``{"detail": "<what is wrong>", ...optional fields}``.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A failure the client can act on; ``extra`` (row, column, columns, limit...) joins the
    body, ``retry_after`` (seconds) says when trying again makes sense."""

    kind: ClassVar[str] = "bad_request"

    def __init__(self, detail: str, *, retry_after: int | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
        self.extra = {k: v for k, v in extra.items() if v is not None}

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, **self.extra}

    @property
    def status_code(self) -> int:
        return status_of(self)

    @property
    def headers(self) -> dict[str, str] | None:
        return headers_of(self)


# Request-level failures the routes and dependencies raise.


class BadRequest(ApiError):
    kind = "bad_request"


class Unauthenticated(ApiError):
    kind = "unauthenticated"


class Forbidden(ApiError):
    kind = "forbidden"


class NotFound(ApiError):
    kind = "not_found"


class NotAcceptable(ApiError):
    kind = "not_acceptable"


class Conflict(ApiError):
    """The resource is not in a state that allows this (yet)."""

    kind = "conflict"


class Gone(ApiError):
    kind = "gone"


class RateLimited(ApiError):
    kind = "rate_limited"


class Unavailable(ApiError):
    """The service cannot answer yet (no model loaded)."""

    kind = "unavailable"


STATUS: dict[str, int] = {
    # the request
    "bad_request": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "not_acceptable": 406,
    "conflict": 409,
    "gone": 410,
    "rate_limited": 429,
    "unavailable": 503,
    # the uploaded file (anomalyops_api.scoring.errors)
    "malformed_upload": 400,
    "incomplete_upload": 400,
    "not_utf8": 400,
    "corrupt_gzip": 400,
    "upload_too_large": 413,
    "unsupported_format": 415,
    "missing_file": 422,
    "missing_columns": 422,
    "duplicate_columns": 422,
    "wrong_column_type": 422,
    "bad_value": 422,
    "unsafe_file": 422,
    "no_data_rows": 422,
    "history": 422,
    "explain_unsupported": 422,
    # a configured bound (anomalyops_api.limits)
    "upload_timeout": 408,
    "too_large": 413,
    "over_quota": 429,
    "busy": 503,
    "too_slow": 503,
    "disk_full": 507,
    # a job that could not run to the end (anomalyops_api.job_store)
    "job_aborted": 500,
}


def status_of(error: ApiError) -> int:
    """The HTTP status answering ``error`` (also what a failed job records)."""
    return STATUS.get(error.kind, 500)


def headers_of(error: ApiError) -> dict[str, str] | None:
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    if error.kind == "unauthenticated":
        headers["WWW-Authenticate"] = "ApiKey"
    return headers or None


def _location(loc: tuple | list) -> str:
    return ".".join(str(part) for part in loc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=status_of(exc), headers=headers_of(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default puts a list in "detail"; keep it a sentence so clients can show it.
        errors = [
            {"loc": _location(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors) or "invalid request"
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)
