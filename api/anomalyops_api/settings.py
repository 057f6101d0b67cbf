"""Settings of the scoring service, read from ``ANOMALYOPS_API_*`` environment variables.

Constructing :class:`ApiSettings` reads only the environment (no files, no directories are
created), so tests can build as many as they like. Production mode refuses to start without
API keys; there is no default secret in any mode.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from anomalyops.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

MIN_PRODUCTION_KEY_LENGTH = 16
MiB = 1024 * 1024


class ApiSettings(BaseSettings):
    """Every field is overridable by ``ANOMALYOPS_API_<FIELD>`` (case-insensitive)."""

    # extra="ignore": the pipeline's own ANOMALYOPS_API_URL shares this prefix and must not
    # stop the service from starting when both deployables read one environment.
    model_config = SettingsConfigDict(env_prefix="ANOMALYOPS_API_", extra="ignore", frozen=True)

    environment: Literal["development", "production"] = "development"
    model_dir: Path = PROJECT_ROOT / "var" / "serving" / "anomaly_detector"
    """The serving directory the pipeline pushes into (TF Serving layout)."""
    poll_interval_s: float = Field(default=1.0, gt=0.0, le=3600.0)
    load_retry_backoff_s: float = Field(default=30.0, ge=0.0)
    """A version that failed to load is retried after this long (doubling, capped at 10 min),
    or at once when its files change."""
    warmup_rows: int = Field(default=1024, ge=1)

    keys: Annotated[list[SecretStr], NoDecode] = []
    """Keys accepted in ``X-API-Key`` for scoring, jobs and model listing (comma-separated)."""
    admin_key: SecretStr | None = None
    """The key for ``/admin/*``; the pipeline sends the same ``ANOMALYOPS_API_ADMIN_KEY``."""

    max_upload_bytes: int = Field(default=512 * MiB, ge=1)
    """Largest file ``POST /v1/score`` accepts (413 above); use a job for bigger files."""
    max_job_upload_bytes: int = Field(default=8 * 1024 * MiB, ge=1)
    spool_dir: Path | None = None
    """Where uploads and replies are spooled; None means the system temp directory."""
    csv_block_bytes: int = Field(default=4 * MiB, ge=64 * 1024)
    """CSV bytes parsed (and scored) per chunk: the knob that bounds memory per request."""
    parquet_batch_rows: int = Field(default=65536, ge=1)
    max_concurrent_scoring: int = Field(default=2, ge=1)
    """Files scored at once (sync requests and job workers share it); others wait."""

    state_dir: Path = PROJECT_ROOT / "var" / "api"
    """Service state that outlives a restart: the pinned version (and jobs by default)."""
    jobs_dir: Path | None = None
    """SQLite database and files of async jobs; None means ``<state_dir>/jobs``."""
    job_ttl_s: float = Field(default=24 * 3600.0, gt=0.0)
    """A finished job's files are deleted this long after it finished."""
    job_workers: int = Field(default=1, ge=1)
    max_queued_jobs: int = Field(default=100, ge=1)
    job_max_attempts: int = Field(default=3, ge=1)
    """A job interrupted by a restart is re-queued until it has been started this often."""

    # -- limits against unbounded work from small or hostile inputs (docs/security.md) --
    max_decompressed_bytes: int = Field(default=4 * 1024 * MiB, ge=1)
    """CSV bytes after gzip decompression a ``POST /v1/score`` file may expand to (413 above)."""
    max_job_decompressed_bytes: int = Field(default=64 * 1024 * MiB, ge=1)
    max_rows: int = Field(default=20_000_000, ge=1)
    """Data rows one ``POST /v1/score`` file may have (413 above)."""
    max_job_rows: int = Field(default=500_000_000, ge=1)
    max_result_bytes: int = Field(default=32 * 1024 * MiB, ge=1)
    """Largest reply file scoring may write, sync or job (413 above)."""
    max_score_seconds: float = Field(default=300.0, gt=0.0)
    """Wall time of one ``POST /v1/score`` from arrival: an upload still arriving after it
    gets 408, scoring still running (waiting included) is cut off with 503."""
    max_job_upload_seconds: float = Field(default=3600.0, gt=0.0)
    """Time a job upload may take to arrive (408 after it)."""
    min_free_disk_bytes: int = Field(default=1024 * MiB, ge=0)
    """Free space the spool and jobs disks must keep; uploads and results that would eat
    into it are refused or cut off (507)."""
    max_concurrent_uploads: int = Field(default=16, ge=1)
    """Uploads (sync and job) received at once; more answer 503 with Retry-After."""
    max_key_upload_bytes: int = Field(default=16 * 1024 * MiB, ge=1)
    """Bytes one API key may have in uploads in flight at once (429 above)."""
    max_key_jobs: int = Field(default=50, ge=1)
    """Jobs one API key may have stored (queued, running or with a result; 429 above)."""
    expired_job_retention_s: float = Field(default=7 * 24 * 3600.0, ge=0.0)
    """An expired job's row (410 on its result) is deleted this long after it expired."""
    csv_escape_formulas: bool = True
    """Prefix echoed key values that start with = + - @ tab or CR (and are not numbers) with
    an apostrophe in CSV replies, so spreadsheets do not run them as formulas."""

    traffic_max_alarm_ratio: float = Field(default=5.0, gt=0.0)
    """``GET /v1/models/{version}/traffic`` says ``above_band`` when the observed alarm rate
    (the lower end of its 99 % interval) exceeds this many times the calibrated rate
    (1 - threshold_quantile). Above 1 because uploads also contain real anomalies."""
    traffic_min_rows: int = Field(default=1000, ge=1)
    """Scored rows a version needs before its alarm rate is judged (``too_few_rows`` below)."""

    log_format: Literal["json", "text"] | None = None
    """``json`` (one object a line) or ``text`` (readable lines); None means json in
    production, text in development (``make run``)."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Level of the service's and uvicorn's loggers (INFO shows model swaps and job events)."""

    docs_enabled: bool | None = None
    """``/docs``, ``/redoc`` and ``/openapi.json``; None means on in development, off in
    production."""

    @field_validator("keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _production_needs_keys(self) -> ApiSettings:
        if self.environment != "production":
            return self
        if not self.keys:
            raise ValueError("ANOMALYOPS_API_KEYS must be set in production")
        if self.admin_key is None:
            raise ValueError("ANOMALYOPS_API_ADMIN_KEY must be set in production")
        secrets = [k.get_secret_value() for k in self.keys] + [self.admin_key.get_secret_value()]
        if any(len(s) < MIN_PRODUCTION_KEY_LENGTH for s in secrets):
            raise ValueError(
                f"API keys must be at least {MIN_PRODUCTION_KEY_LENGTH} characters in production"
            )
        if self.admin_key.get_secret_value() in secrets[:-1]:
            raise ValueError("ANOMALYOPS_API_ADMIN_KEY must differ from the scoring keys")
        return self

    @property
    def resolved_jobs_dir(self) -> Path:
        return self.jobs_dir or self.state_dir / "jobs"

    @property
    def docs_on(self) -> bool:
        if self.docs_enabled is None:
            return self.environment != "production"
        return self.docs_enabled

    @property
    def resolved_log_format(self) -> Literal["json", "text"]:
        if self.log_format is None:
            return "json" if self.environment == "production" else "text"
        return self.log_format

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().lower() or None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def auth_open(self) -> bool:
        """Development without scoring keys: every request is let in (and a warning logged)."""
        return not self.keys

    @property
    def admin_open(self) -> bool:
        return self.admin_key is None

    def warn_if_open(self) -> None:
        if self.auth_open:
            log.warning(
                "!!! ANOMALYOPS_API_KEYS is not set: scoring and jobs need NO API key. "
                "Development only; production mode refuses to start like this. !!!"
            )
        if self.admin_open:
            log.warning(
                "!!! ANOMALYOPS_API_ADMIN_KEY is not set: /admin/* (reload, pin) is OPEN. "
                "Development only. !!!"
            )
