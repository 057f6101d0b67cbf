"""Reply models of the model-management endpoints (``/v1/models``, ``/admin/*``), apart
from the scoring and job replies in :mod:`anomalyops_api.schemas`."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from anomalyops.alarm_band import TrafficStatus
from anomalyops_api.model import ModelMetadata
from anomalyops_api.schemas import examples
from anomalyops_api.traffic import HISTOGRAM_EDGES

EXAMPLE_METADATA = {
    "model_name": "anomaly_detector",
    "version": 1764230400,
    "created_at": "2026-11-27T09:00:00+00:00",
    "training_spans": ["2026-11-13", "2026-11-26"],
    "threshold": 3.71,
    "threshold_quantile": 0.99,
    "metrics": {"auc_pr": 0.81, "f1": 0.74, "false_alarm_rate": 0.004},
    "feature_spec": {"name": "example_spec", "timestamp": {"column": "timestamp"}},
    "feature_spec_fingerprint": "3f2a9c1b7d10",
    "pipeline_run_id": "scheduled__2026-11-26T00:00:00+00:00",
}


class ModelVersionInfo(BaseModel):
    version: int
    state: Literal["serving", "available", "incomplete", "failed", "unreadable"]
    """serving: answering requests; available: complete, not served; incomplete: being
    written or broken (ignored); failed: its last load failed; unreadable: bad metadata."""
    complete: bool
    metadata: ModelMetadata | None = None
    error: str | None = None
    failed_attempts: int | None = None
    loaded_at: dt.datetime | None = None
    evaluation_report_url: str | None = None
    """Where its evaluation report is served (``GET /v1/models/{version}/report``)."""


class ModelsResponse(BaseModel):
    model_config = examples(
        {
            "model_dir": "/srv/serving/anomaly_detector",
            "policy": "latest",
            "active_version": 1764230400,
            "pinned_version": None,
            "last_scan_at": "2026-11-27T09:00:01+00:00",
            "versions": [
                {
                    "version": 1764230400,
                    "state": "serving",
                    "complete": True,
                    "metadata": EXAMPLE_METADATA,
                    "loaded_at": "2026-11-27T09:00:01+00:00",
                },
                {
                    "version": 1764144000,
                    "state": "available",
                    "complete": True,
                    "metadata": EXAMPLE_METADATA | {"version": 1764144000},
                },
            ],
        }
    )

    model_dir: str
    policy: Literal["latest", "pinned"]
    active_version: int | None
    pinned_version: int | None
    pin_error: str | None = Field(
        default=None,
        description="Why the pinned version is not served (gone or failing to load); the "
        "newest loadable version serves meanwhile. None when the pin is honoured.",
    )
    last_scan_at: dt.datetime | None
    versions: list[ModelVersionInfo] = Field(description="Newest first; every integer dir.")


class ActiveModelResponse(BaseModel):
    """What an upload must contain for the version being served."""

    model_config = examples(
        {
            "version": 1764230400,
            "threshold": 3.71,
            "feature_columns": ["feature_1", "feature_2", "feature_3"],
            "key_columns": ["entity_id", "timestamp"],
            "loaded_at": "2026-11-27T09:00:01+00:00",
            "metadata": EXAMPLE_METADATA,
        }
    )

    version: int
    threshold: float
    feature_columns: list[str]
    key_columns: list[str]
    loaded_at: dt.datetime
    metadata: ModelMetadata


class FailedVersion(BaseModel):
    version: int
    error: str


class ReloadResponse(BaseModel):
    """What the pipeline reads after a push: is ``model_version`` the version it pushed?"""

    model_config = examples(
        {
            "model_version": 1764230400,
            "previous_version": 1764144000,
            "changed": True,
            "pinned_version": None,
            "failed_versions": [],
            "duration_ms": 512.3,
        }
    )

    model_version: int | None = Field(description="The version served after the reload.")
    previous_version: int | None
    changed: bool
    pinned_version: int | None
    failed_versions: list[FailedVersion] = Field(
        description="Versions that failed to load during this reload (skipped)."
    )
    duration_ms: float


class PinRequest(BaseModel):
    model_config = examples({"version": 1764144000})

    version: int = Field(ge=0)


class AlarmRateInterval(BaseModel):
    """A 99 % Wilson interval of the observed alarm rate."""

    lo: float
    hi: float
    confidence: float = 0.99


class ScoreHistogram(BaseModel):
    """Served rows by ``anomaly_score / threshold``: 1.0 is the threshold."""

    edges: list[float] = Field(
        description="Lower bin edges: `counts[i]` holds ratios in [edges[i], edges[i+1]), the "
        "last bin everything from its edge up, the first also ratios below 0."
    )
    counts: list[int]


class TrafficResponse(BaseModel):
    """What one version served since the service process started (in memory: a restart
    starts from zero) against the alarm rate it was calibrated for."""

    model_config = examples(
        {
            "version": 1764230400,
            "threshold": 3.71,
            "rows": 120000,
            "flagged": 36120,
            "unscored": 0,
            "alarm_rate": 0.301,
            "alarm_rate_interval": {"lo": 0.2976, "hi": 0.3044, "confidence": 0.99},
            "calibrated_alarm_rate": 0.01,
            "max_alarm_ratio": 5.0,
            "max_alarm_rate": 0.05,
            "min_rows": 1000,
            "status": "above_band",
            "histogram": {
                "edges": list(HISTOGRAM_EDGES),
                "counts": [30000, 20000, 18000, 15880, 12000, 9000, 8000, 4000, 2000, 1000, 120],
            },
            "since": "2026-11-27T09:00:03+00:00",
            "last": "2026-11-27T11:42:10+00:00",
            "summary": "version 1764230400: 30.10% of 120,000 rows flagged (99% interval "
            "29.76%-30.44%); calibrated for 1.00%, band up to 5.00%: ABOVE the band, the data "
            "has likely drifted",
        }
    )

    version: int
    threshold: float
    rows: int = Field(description="Rows scored (with a score) and served by this version.")
    flagged: int = Field(description="Of those, rows flagged `is_anomaly`.")
    unscored: int = Field(
        description="Rows returned without a score (temporal warm-up rows, `warmup=true`)."
    )
    alarm_rate: float | None = Field(description="flagged / rows; null with no rows.")
    alarm_rate_interval: AlarmRateInterval | None
    calibrated_alarm_rate: float | None = Field(
        description="1 - threshold_quantile from the model's metadata: the share of normal rows "
        "its threshold was set to flag. Null for models that do not record it."
    )
    max_alarm_ratio: float = Field(description="ANOMALYOPS_API_TRAFFIC_MAX_ALARM_RATIO.")
    max_alarm_rate: float | None = Field(
        description="Top of the band: max_alarm_ratio x calibrated_alarm_rate (at most 1)."
    )
    min_rows: int = Field(description="ANOMALYOPS_API_TRAFFIC_MIN_ROWS.")
    status: TrafficStatus = Field(
        description="no_traffic: no rows scored yet; not_calibrated: no calibrated rate to "
        "compare with; too_few_rows: fewer than min_rows; above_band: the interval's lower "
        "end exceeds max_alarm_rate (drift, or a broken upstream); within_band: otherwise."
    )
    histogram: ScoreHistogram | None = Field(
        description="Null when the threshold is not positive (the ratio means nothing)."
    )
    since: dt.datetime | None = Field(description="First served file of this version (UTC).")
    last: dt.datetime | None = Field(description="Last served file of this version (UTC).")
    summary: str = Field(description="The same in one line, for a human.")
