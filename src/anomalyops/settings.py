"""One typed settings object for the pipeline deployable (Airflow + TFX).

Every value is overridable by environment variables prefixed ``ANOMALYOPS_``; nested
values use ``__`` (``ANOMALYOPS_SMTP__HOST``). Constructing it reads only the environment.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The repository root when running from a checkout (config and the default lake live here)."""

DEFAULT_BEAM_ARGS = [
    # FnApiRunner in memory: fastest on one machine, and it stops Beam >= 2.68 from trying
    # to download its Prism runner binary.
    "--runner=FnApiRunner",
    "--direct_running_mode=in_memory",
    "--direct_num_workers=1",
]


class SmtpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8025
    user: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    ssl: bool = False
    mail_from: str = "anomalyops@localhost"
    timeout_s: float = 10.0


class SimulatorSettings(BaseModel):
    scenario: Literal["none", "gradual", "sudden"] = "none"
    seed: int = 42
    rows_per_day: int = Field(default=1440, ge=1)
    anomaly_rate: float = Field(default=0.01, ge=0.0, le=0.5)
    drift_start: dt.date | None = None
    """First drifted day; None means ``start_date`` + 14 days."""
    corrupt_days: dict[
        dt.date, Literal["missing_column", "nulls", "out_of_range", "type_change", "empty"]
    ] = {}
    """Days the demo deliberately breaks, to show the quarantine path."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ANOMALYOPS_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    environment: Literal["development", "production"] = "development"
    lake_root: str = str(PROJECT_ROOT / "data_lake")
    """A local path or any fsspec URL (``s3://bucket/lake``, ``memory://lake``)."""
    feature_spec_path: Path = PROJECT_ROOT / "config" / "feature_spec.yaml"
    start_date: dt.date = dt.date(2026, 11, 1)
    source: Literal["simulator", "landing"] = "simulator"
    simulator: SimulatorSettings = SimulatorSettings()

    alert_emails: list[str] = ["ops@localhost"]
    smtp: SmtpSettings = SmtpSettings()

    pipeline_name: str = "anomalyops"
    pipeline_root: Path = PROJECT_ROOT / "var" / "tfx"
    metadata_path: Path | None = None
    """ML Metadata SQLite file; None means ``<pipeline_root>/metadata.sqlite``."""
    serving_model_dir: Path = PROJECT_ROOT / "var" / "serving" / "anomaly_detector"
    api_url: str | None = None
    """Where the scoring service listens; None means no service to notify after a push."""
    api_admin_key: SecretStr | None = None
    beam_args: list[str] = DEFAULT_BEAM_ARGS

    @model_validator(mode="after")
    def _production_needs_real_values(self) -> Settings:
        if self.environment == "production":
            if self.api_url and self.api_admin_key is None:
                raise ValueError(
                    "ANOMALYOPS_API_ADMIN_KEY must be set in production when ANOMALYOPS_API_URL is"
                )
            if self.smtp.host in ("127.0.0.1", "localhost") and self.smtp.port == 8025:
                raise ValueError(
                    "ANOMALYOPS_SMTP__HOST/PORT must name a real SMTP server in production"
                )
        return self

    @property
    def mlmd_path(self) -> Path:
        return self.metadata_path or self.pipeline_root / "metadata.sqlite"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
