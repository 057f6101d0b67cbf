"""``POST /v1/score``: upload a file, get it back scored, in one request."""

from __future__ import annotations

import shutil
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import APIRouter, Query, Request
from starlette.background import BackgroundTask

from anomalyops_api.deps import (
    ActiveModelDep,
    CallerDep,
    LimiterDep,
    MetricsDep,
    SettingsDep,
    TrafficDep,
    UploadGateDep,
)
from anomalyops_api.explain import MAX_EXPLAIN
from anomalyops_api.limits import UploadTicket, sync_limits
from anomalyops_api.routes.common import (
    UPLOAD_BODY,
    BigChunkFileResponse,
    error_responses,
    negotiate,
)
from anomalyops_api.schemas import ScoreResponse
from anomalyops_api.scoring import OutputFormat, detect_format, score_file
from anomalyops_api.uploads import SPOOL_PREFIX, receive_upload

router = APIRouter(tags=["scoring"])
PARQUET_MEDIA = OutputFormat.PARQUET.media_type

FormatQuery = Annotated[
    OutputFormat | None,
    Query(description="Reply format; overrides the Accept header. Default: csv."),
]
WarmupQuery = Annotated[
    bool,
    Query(
        description="For a model whose spec has temporal derivations (rolling windows, lags): "
        "return the rows that lack enough preceding rows of their entity unscored "
        "(`anomaly_score` and `is_anomaly` null) instead of answering 422."
    ),
]

ExplainQuery = Annotated[
    int,
    Query(
        ge=0,
        le=MAX_EXPLAIN,
        description="Name each flagged row's `explain` top contributing features "
        "(`top_features`: `feature=contribution;...` in CSV, a list in JSON and Parquet; empty/null for rows "
        "not flagged). Contributions come from the detector's own parts (docs/api.md). "
        "0: off. A model that cannot explain answers 422.",
    ),
]

_CSV_EXAMPLE = (
    '"entity_id","timestamp","anomaly_score","is_anomaly","model_version","threshold"\n'
    '"e-001","2026-11-27T09:00:00",0.4211,false,1764230400,3.71\n'
    '"e-001","2026-11-27T09:01:00",5.93,true,1764230400,3.71\n'
)

_REPLY_HEADERS = {
    "X-Model-Version": {
        "description": "Version that scored every row.",
        "schema": {"type": "integer"},
    },
    "X-Model-Threshold": {"description": "Its anomaly threshold.", "schema": {"type": "number"}},
    "X-Rows-Scored": {"description": "Rows in the reply.", "schema": {"type": "integer"}},
}


def model_headers(version: int, threshold: float, rows: int) -> dict[str, str]:
    return {
        "X-Model-Version": str(version),
        "X-Model-Threshold": repr(float(threshold)),
        "X-Rows-Scored": str(rows),
    }


@router.post(
    "/v1/score",
    summary="Score an uploaded CSV/Parquet file",
    response_model=None,
    openapi_extra=UPLOAD_BODY,
    responses={
        200: {
            "model": ScoreResponse,
            "description": (
                "One row per input row: the key columns present in the upload, "
                "`anomaly_score`, `is_anomaly`, and (CSV, Parquet) `model_version`, `threshold`."
            ),
            "headers": _REPLY_HEADERS,
            "content": {
                "text/csv": {"schema": {"type": "string"}, "example": _CSV_EXAMPLE},
                PARQUET_MEDIA: {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **error_responses(400, 401, 406, 408, 413, 415, 422, 429, 503, 507),
    },
)
async def score(
    request: Request,
    caller: CallerDep,
    model: ActiveModelDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    limiter: LimiterDep,
    gate: UploadGateDep,
    traffic: TrafficDep,
    format: FormatQuery = None,
    warmup: WarmupQuery = False,
    explain: ExplainQuery = 0,
) -> BigChunkFileResponse:
    """Streams the upload to disk, scores it in chunks with the version that was being
    served when the request arrived, and streams the reply from a spooled file, so memory
    stays flat whatever the file size. Files above `max_upload_bytes` need `POST /v1/jobs`;
    so do files that take longer than `max_score_seconds` (503 naming the limit)."""
    deadline = time.monotonic() + settings.max_score_seconds
    out_format = negotiate(format, request.headers.get("accept"))
    work = Path(tempfile.mkdtemp(prefix=SPOOL_PREFIX, dir=settings.spool_dir))
    ticket = None
    recorder = traffic.recorder(model)  # committed only once the whole file has scored
    try:
        with gate.admitted(caller.owner, work) as ticket:
            upload = await receive_upload(
                request,
                work / "input",
                settings.max_upload_bytes,
                ticket=ticket,
                min_free_disk=settings.min_free_disk_bytes,
                timeout=(deadline - time.monotonic(), "max_score_seconds"),
            )
        metrics.upload_bytes.inc(upload.size)
        fmt = detect_format(upload.path, upload.content_type, upload.filename)
        with metrics.scoring_seconds.labels("sync").time():
            result = await anyio.to_thread.run_sync(
                partial(
                    score_file,
                    upload.path,
                    fmt,
                    model,
                    work / f"result.{out_format.value}",
                    out_format,
                    csv_block_bytes=settings.csv_block_bytes,
                    parquet_batch_rows=settings.parquet_batch_rows,
                    limits=sync_limits(settings, deadline),
                    warmup=warmup,
                    explain=explain,
                    on_scores=recorder,
                ),
                limiter=limiter,
            )
        (work / "input").unlink()  # free the disk before the (maybe slow) download
    except BaseException:
        _cleanup(work, ticket)
        raise
    recorder.commit()
    metrics.rows_scored.labels("sync").inc(result.rows)
    return BigChunkFileResponse(
        result.output_path,
        media_type=out_format.media_type,
        headers=model_headers(result.model_version, result.threshold, result.rows),
        background=BackgroundTask(_cleanup, work, ticket),
    )


def _cleanup(work: Path, ticket: UploadTicket | None) -> None:
    shutil.rmtree(work, ignore_errors=True)
    if ticket is not None:
        ticket.done_with_dir()
