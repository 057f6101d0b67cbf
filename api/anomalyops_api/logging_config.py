"""Logging of the scoring service: one ``dictConfig`` applied by the app factory.

Two formats (``ANOMALYOPS_API_LOG_FORMAT``): ``json`` (one object a line: ``time``, ``level``,
``logger``, ``message``, ``request_id``, ``model_version``, plus ``exc_info`` and uvicorn's
access fields), the default in production; ``text`` (one readable line), the default in
development and in ``make run``. Uvicorn's own loggers lose their handlers and propagate to
the same root handler, so every line of the process has one format.

The request id and the model version reach every record through context variables:
:class:`RequestContextMiddleware` sets both for a request (tasks and worker threads it starts
inherit them); the job workers set the version of the job they score; anything else (the
model watcher, start-up) gets the version served at that moment.

Nothing happens at import time: :func:`configure_logging` is called by ``create_app``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.config
import re
import sys
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import IO, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID_LENGTH = 64
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
"""A caller's id is kept only if it is a short token of these characters; anything else
(long, spaces, quotes, control characters, non-ASCII) is replaced by a generated id."""

request_id_var: ContextVar[str | None] = ContextVar("anomalyops_request_id", default=None)
model_version_var: ContextVar[int | None] = ContextVar("anomalyops_model_version", default=None)

_served_version: Callable[[], int | None] | None = None

HANDLER_MARK = "_anomalyops_api_handler"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def set_served_version_source(source: Callable[[], int | None] | None) -> None:
    """Where records outside a request or job read the served version (the app's registry)."""
    global _served_version
    _served_version = source


def current_model_version() -> int | None:
    version = model_version_var.get()
    if version is None and _served_version is not None:
        try:
            version = _served_version()
        except Exception:  # a log line must never fail because of this
            version = None
    return version


def valid_request_id(value: str | None) -> str | None:
    """``value`` if it is a sane short token, else None (the caller then generates one)."""
    if value is None or len(value) > MAX_REQUEST_ID_LENGTH:
        return None
    return value if _VALID_REQUEST_ID.fullmatch(value) else None


def new_request_id() -> str:
    return uuid.uuid4().hex


class ContextFilter(logging.Filter):
    """Puts ``request_id`` and ``model_version`` on every record (None when there is none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "model_version"):
            record.model_version = current_model_version()
        return True


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F] if c != 0x09}


def _one_line(text: str) -> str:
    """Control characters escaped, so nothing a client sends can forge a line."""
    return text.translate(_CONTROL)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; non-ASCII and control characters are escaped by json."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "model_version": getattr(record, "model_version", None),
        }
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, path, _, status = args
            entry.update(client=client, method=method, path=path, status=status)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``2026-11-27 09:00:03,123 INFO anomalyops_api.registry [rid=… v=…] message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(context)s%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        parts = []
        request_id = getattr(record, "request_id", None)
        version = getattr(record, "model_version", None)
        if request_id:
            parts.append(f"rid={request_id}")
        if version is not None:
            parts.append(f"v={version}")
        record.context = f"[{' '.join(parts)}] " if parts else ""
        return super().format(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = _one_line(record.message)  # tracebacks after it keep their lines
        return super().formatMessage(record)


def logging_dict(log_format: str, level: str, stream: IO[str] | None = None) -> dict[str, Any]:
    """The ``dictConfig`` of the service (``stream`` defaults to stderr)."""
    handler: dict[str, Any] = {
        "class": "logging.StreamHandler",
        "formatter": log_format,
        "filters": ["context"],
        "stream": stream if stream is not None else "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {
            "json": {"()": JsonFormatter},
            "text": {"()": TextFormatter},
        },
        "handlers": {"anomalyops_api": handler},
        "root": {"level": level, "handlers": ["anomalyops_api"]},
        # Uvicorn's handlers go: its records propagate to the root handler above.
        "loggers": {
            name: {"level": level, "handlers": [], "propagate": True} for name in UVICORN_LOGGERS
        },
    }


def configure_logging(log_format: str, level: str, stream: IO[str] | None = None) -> None:
    """Apply :func:`logging_dict`. Handlers others put on the root logger that do not write
    to stdout/stderr (pytest's capture, an embedding process's file) are kept; ones that do
    would print every line twice and are dropped."""
    root = logging.getLogger()
    keep = [h for h in root.handlers if not _writes_to_std(h)]
    logging.config.dictConfig(logging_dict(log_format, level, stream))
    for handler in root.handlers:
        setattr(handler, HANDLER_MARK, True)
    for handler in keep:
        if handler not in root.handlers:
            root.addHandler(handler)


def _writes_to_std(handler: logging.Handler) -> bool:
    if getattr(handler, HANDLER_MARK, False):
        return True
    stream = getattr(handler, "stream", None)
    return type(handler) is logging.StreamHandler and stream in (
        sys.stderr,
        sys.stdout,
        sys.__stderr__,
        sys.__stdout__,
    )


class RequestContextMiddleware:
    """Pure ASGI, outermost: takes a sane ``X-Request-ID`` or generates one, echoes it in the
    reply (500s included), and sets the request id and served version for the request's
    log records."""

    def __init__(self, app: ASGIApp, version_source: Callable[[], int | None]) -> None:
        self.app = app
        self.version_source = version_source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = [v for k, v in scope.get("headers", []) if k == b"x-request-id"]
        request_id = None
        if len(sent) == 1:  # several ids: which would be the caller's? none
            request_id = valid_request_id(sent[0].decode("latin-1"))
        rejected = bool(sent) and request_id is None
        if request_id is None:
            request_id = new_request_id()
        header = request_id.encode("ascii")
        rid_token = request_id_var.set(request_id)
        try:
            version = self.version_source()
        except Exception:
            version = None
        version_token = model_version_var.set(version)
        if rejected:
            # Never the value itself: it is whatever the client chose to send.
            log.info(
                "ignored an invalid %s header (%d bytes); using a generated id",
                REQUEST_ID_HEADER,
                sum(len(v) for v in sent),
            )

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((b"x-request-id", header))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            model_version_var.reset(version_token)
            request_id_var.reset(rid_token)
