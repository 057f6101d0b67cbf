"""Reply models of scoring, jobs and health, each with an example for /docs (the model-
management replies are in :mod:`anomalyops_api.model_schemas`)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from anomalyops_api.job_record import JobStatus
from anomalyops_api.scoring import InputFormat, OutputFormat


def examples(*cases: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(cases)})


class FieldError(BaseModel):
    """One invalid request parameter (422)."""

    loc: str = Field(description="Where, dotted: e.g. `query.format`, `body.version`.")
    msg: str
    type: str | None = None


class ErrorResponse(BaseModel):
    """Every error: ``detail`` says what is wrong; the optional fields locate it."""

    model_config = examples(
        {
            "detail": "missing columns required by model version 1764230400: feature_3",
            "columns": ["feature_3"],
        },
        {
            "detail": "row 17, column 'feature_2': cannot parse 'n/a?' as a number",
            "row": 17,
            "column": "feature_2",
        },
    )

    detail: str
    row: int | None = Field(default=None, description="1-based data row (header excluded).")
    column: str | None = None
    columns: list[str] | None = None
    limit: str | None = Field(
        default=None, description="The setting whose limit was hit (ANOMALYOPS_API_<LIMIT>)."
    )
    errors: list[FieldError] | None = Field(
        default=None, description="Request validation errors, one per bad parameter."
    )


class FeatureContribution(BaseModel):
    """One feature's share of a flagged row's score (``explain=k``)."""

    feature: str
    contribution: float


class ScoredRow(BaseModel):
    """One scored row; the spec's key columns (e.g. entity_id, timestamp) come first when
    the upload had them, echoed as text."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "entity_id": "e-001",
                    "timestamp": "2026-11-27T09:00:00",
                    "anomaly_score": 0.4211,
                    "is_anomaly": False,
                }
            ]
        },
    )

    anomaly_score: float | None
    is_anomaly: bool | None
    top_features: list[FeatureContribution] | None = Field(
        default=None,
        description="With `explain=k`: the row's k top contributing features if flagged, "
        "largest first; null for rows not flagged. Absent without `explain`.",
    )


class ScoreResponse(BaseModel):
    """JSON reply of ``POST /v1/score`` (the CSV reply carries the same fields as columns)."""

    model_config = examples(
        {
            "model_version": 1764230400,
            "threshold": 3.71,
            "results": [
                {
                    "entity_id": "e-001",
                    "timestamp": "2026-11-27T09:00:00",
                    "anomaly_score": 0.4211,
                    "is_anomaly": False,
                },
                {
                    "entity_id": "e-001",
                    "timestamp": "2026-11-27T09:01:00",
                    "anomaly_score": 5.93,
                    "is_anomaly": True,
                },
            ],
            "rows": 2,
        }
    )

    model_version: int
    threshold: float
    results: list[ScoredRow]
    rows: int


class HealthResponse(BaseModel):
    model_config = examples({"status": "ok"})

    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    model_config = examples(
        {"status": "ready", "model_version": 1764230400, "detail": None},
        {
            "status": "not ready",
            "model_version": None,
            "detail": "no model version loaded from /srv/serving/anomaly_detector",
        },
    )

    status: Literal["ready", "not ready"]
    model_version: int | None
    detail: str | None = None


class JobResponse(BaseModel):
    model_config = examples(
        {
            "id": "4be0f4b8a3f84d2c9e3f0d1f5c7a9b21",
            "status": "running",
            "created_at": "2026-11-27T09:00:00+00:00",
            "started_at": "2026-11-27T09:00:01+00:00",
            "finished_at": None,
            "expires_at": None,
            "filename": "telemetry-2026-11-26.csv.gz",
            "input_format": "csv.gz",
            "output_format": "csv",
            "input_bytes": 83886080,
            "rows_done": 400000,
            "rows_total": 1000000,
            "progress": 0.4,
            "attempts": 1,
            "model_version": None,
            "threshold": None,
            "error": None,
            "result_url": None,
        }
    )

    id: str
    status: JobStatus
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    expires_at: dt.datetime | None = Field(description="When the result will be deleted.")
    filename: str | None
    input_format: InputFormat
    output_format: OutputFormat
    input_bytes: int
    rows_done: int
    rows_total: int | None = Field(
        description="Exact for Parquet; a line count for CSV until the job finishes."
    )
    progress: float | None = Field(description="rows_done / rows_total, 0..1.")
    attempts: int
    model_version: int | None = Field(description="Version that scored the file (when done).")
    threshold: float | None
    error: ErrorResponse | None = Field(
        description="Why the job failed: the same body a sync request would have received."
    )
    error_status: int | None = Field(
        default=None, description="The HTTP status the same failure gets from POST /v1/score."
    )
    result_url: str | None


class JobListResponse(BaseModel):
    """The caller's jobs, newest first (an admin key sees every key's)."""

    jobs: list[JobResponse]
    limit: int = Field(description="The most jobs one reply lists; ask for fewer with `limit`.")
