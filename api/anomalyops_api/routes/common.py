"""Pieces shared by the scoring and jobs routes: upload docs, negotiation, file replies."""

from __future__ import annotations

from typing import Any

from starlette.responses import FileResponse

from anomalyops_api.errors import NotAcceptable
from anomalyops_api.schemas import ErrorResponse
from anomalyops_api.scoring import OutputFormat

_FILE_SCHEMA = {"type": "string", "format": "binary"}

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "The file: CSV (UTF-8, comma-separated, header row), gzip-compressed CSV, or "
            "Parquet. Send it as the multipart field `file`, or as the raw body with its own "
            "Content-Type. It must have every feature column of the served model "
            "(GET /v1/models/active); the spec's key columns are echoed when present; other "
            "columns are ignored."
        ),
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": _FILE_SCHEMA},
                }
            },
            "text/csv": {"schema": _FILE_SCHEMA},
            "application/gzip": {"schema": _FILE_SCHEMA},
            "application/vnd.apache.parquet": {"schema": _FILE_SCHEMA},
        },
    }
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    reasons = {
        400: (
            "Malformed file (empty, not CSV/Parquet/gzip, not UTF-8, broken multipart) "
            "or a request body that is not JSON."
        ),
        401: "Missing or invalid X-API-Key.",
        403: "A scoring key on an admin endpoint.",
        404: "No such job or version.",
        406: "Accept names no format this endpoint can send.",
        409: "The resource is not in a state that allows this.",
        408: "The upload did not arrive within its time limit (`limit` names it).",
        410: "The job's result has expired.",
        413: "Over a size limit (upload, decompressed bytes, rows, result); `limit` names it.",
        415: "Unsupported content type.",
        422: (
            "Missing columns, a value that is not a finite number (names row and column), "
            "a refused Parquet type, or an invalid parameter (`errors` lists each)."
        ),
        429: "Too many queued jobs, or this key's quota (`limit` names it); see Retry-After.",
        503: (
            "No model loaded yet, too many uploads in flight, or scoring exceeded "
            "max_score_seconds (`limit` names it)."
        ),
        507: "Not enough free disk space (limit min_free_disk_bytes).",
    }
    return {code: {"model": ErrorResponse, "description": reasons[code]} for code in codes}


_MEDIA = {
    "text/csv": OutputFormat.CSV,
    "text/*": OutputFormat.CSV,
    "*/*": OutputFormat.CSV,
    "application/json": OutputFormat.JSON,
    "application/*": OutputFormat.JSON,
    "application/vnd.apache.parquet": OutputFormat.PARQUET,
    "application/x-parquet": OutputFormat.PARQUET,
}


def negotiate(format_param: OutputFormat | None, accept: str | None) -> OutputFormat:
    """``format`` wins; else the best of text/csv, application/json and Parquet in Accept
    (CSV when the client accepts anything)."""
    if format_param is not None:
        return format_param
    if not accept:
        return OutputFormat.CSV
    candidates = []
    for position, part in enumerate(accept.split(",")):
        media, _, params = part.strip().partition(";")
        media = media.strip().lower()
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        choice = _MEDIA.get(media)
        if choice is not None and quality > 0:
            # Higher quality first, then exact types over wildcards, then the earlier one.
            candidates.append((quality, "*" not in media, -position, choice))
    if not candidates:
        raise NotAcceptable(
            f"cannot reply with {accept!r}: use text/csv, application/json or "
            "application/vnd.apache.parquet",
        )
    return max(candidates)[3]


class BigChunkFileResponse(FileResponse):
    # 64 KiB (Starlette's default) costs a thread hop per chunk; results are tens of MB.
    chunk_size = 1024 * 1024
