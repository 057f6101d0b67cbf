"""What a job is: its states and the stored row, shared by the store, the service and the
routes without pulling in SQLite or the worker loop."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from dataclasses import dataclass
from enum import Enum
from typing import Any

from anomalyops_api.errors import ApiError
from anomalyops_api.scoring.formats import InputFormat, OutputFormat


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"


FINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED)


class JobAborted(ApiError):
    """The job could not run to its end for reasons of ours (a crash, too many restarts)."""

    kind = "job_aborted"


@dataclass(frozen=True)
class Job:
    id: str
    owner: str
    status: JobStatus
    created_at: float
    started_at: float | None
    finished_at: float | None
    expires_at: float | None
    filename: str | None
    input_format: InputFormat
    output_format: OutputFormat
    input_bytes: int
    rows_done: int
    rows_total: int | None
    model_version: int | None
    threshold: float | None
    attempts: int
    error: str | None
    error_status: int | None
    error_extra: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        data = dict(row)
        data["status"] = JobStatus(data["status"])
        data["input_format"] = InputFormat(data["input_format"])
        data["output_format"] = OutputFormat(data["output_format"])
        data["error_extra"] = json.loads(data["error_extra"]) if data["error_extra"] else None
        return cls(**data)


def owner_of(api_key: str | None) -> str:
    """Jobs belong to the key that submitted them (stored as a hash, never the key)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16] if api_key else ""


def timestamp(value: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value, dt.timezone.utc) if value is not None else None
