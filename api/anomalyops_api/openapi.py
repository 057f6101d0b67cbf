"""Make the published OpenAPI and the routing tell the truth.

* 422 bodies are ``{"detail": str, "errors": [...]}`` (``errors.py``), not FastAPI's default
  ``HTTPValidationError``: every operation's 422 points at ``ErrorResponse``.
* A 405 lists in ``Allow`` every method the path has (Starlette lists only the first route's,
  e.g. ``GET`` for ``/v1/jobs/{id}``, which also has ``DELETE``).
* ``/docs`` and ``/redoc`` load Swagger UI and ReDoc from the ``fastapi-offline`` package,
  not a CDN, so they work in air-gapped sites.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_ERROR_REF = "#/components/schemas/ErrorResponse"
_DEFAULT_VALIDATION = ("HTTPValidationError", "ValidationError")
HTTP_METHODS = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE")


def truthful_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema with every 422 described by ``ErrorResponse``; cached like FastAPI's."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers,
    )
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            response = operation.get("responses", {}).get("422")
            if response is None:
                continue
            response["content"] = {"application/json": {"schema": {"$ref": _ERROR_REF}}}
            if response.get("description") == "Validation Error":
                response["description"] = (
                    "An invalid parameter or body: `detail` says what, `errors` lists each."
                )
    components = schema.get("components", {}).get("schemas", {})
    for name in _DEFAULT_VALIDATION:
        components.pop(name, None)
    app.openapi_schema = schema
    return schema


class AllowHeaderMiddleware:
    """On a 405, set ``Allow`` to the methods of every route that matches the path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                allowed = self._allowed(scope)
                if allowed:
                    headers = [
                        (k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"
                    ]
                    headers.append((b"allow", ", ".join(allowed).encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_wrapper)

    @staticmethod
    def _allowed(scope: Scope) -> list[str]:
        # Probe each method against the app's routes rather than reading route.methods:
        # FastAPI wraps included routers in objects whose routes are not public.
        routes = getattr(scope.get("app"), "routes", [])
        return [
            method
            for method in HTTP_METHODS
            if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in routes)
        ]
