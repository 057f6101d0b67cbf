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


class LakeLockSettings(BaseSettings):
    """The lake's per-date lock (``ANOMALYOPS_LAKE_LOCK__*``); see docs/security.md.

    A settings object of its own so every ``Lake`` reads it from the environment without
    building (and validating) the whole pipeline configuration.
    """

    model_config = SettingsConfigDict(env_prefix="ANOMALYOPS_LAKE_LOCK__", extra="forbid")

    timeout_s: float = Field(default=600.0, ge=0.0)
    """How long a writer waits for another writer of the same date before giving up."""
    ttl_s: float = Field(default=300.0, gt=0.0)
    """Object stores: lease of a lock object; renewed every third of it while held, and a lock
    not renewed for this long counts as abandoned (its owner died) and is broken."""
    poll_s: float = Field(default=0.2, gt=0.0)
    """Pause between attempts to take a held lock."""


class SimulatorSettings(BaseModel):
    scenario: Literal["none", "gradual", "sudden"] = "none"
    seed: int = 42
    rows_per_day: int = Field(default=1440, ge=1)
    anomaly_rate: float = Field(default=0.01, ge=0.0, le=0.5)
    max_event_share: float = Field(default=1.0, gt=0.0, le=1.0)
    """Largest share of a day's anomalous rows one anomaly event may take (see the simulator)."""
    anomaly_kinds: list[Literal["spike", "level_shift", "stuck", "broken_correlation", "ramp"]] = (
        Field(default=["spike", "level_shift", "stuck", "broken_correlation"], min_length=1)
    )
    """Anomaly kinds the simulator draws from; ``ramp`` is opt-in (it changes every day's events)."""
    drift_start: dt.date | None = None
    """First drifted day; None means ``start_date`` + 14 days."""
    corrupt_days: dict[
        dt.date, Literal["missing_column", "nulls", "out_of_range", "type_change", "empty"]
    ] = {}
    """Days the demo deliberately breaks, to show the quarantine path."""


class TrainingSettings(BaseModel):
    """The TFX training pipeline (``ANOMALYOPS_TRAINING__*``); see docs/pipeline.md."""

    window_days: int = Field(default=14, ge=1)
    """Train on the validated spans (days) of the last ``window_days`` days ingested."""
    window_restart_drift_score: float | None = Field(default=0.5, gt=0.0, le=1.0)
    """A day on which the validation gate found significant drift (p < ``drift_alpha``) in a
    feature whose marginal two-sample KS statistic against the reference days reaches this
    starts a new regime: the window then begins at that day, so a sudden shift is learnt from
    the next run on instead of after ``window_days`` days. The KS statistic does not grow with
    the sample size (0.5: half of one distribution's mass lies beyond the other), so sampling
    noise never cuts the window. The gate uses it too (its reference days start at the newest
    regime start). None: never restart."""
    window_days_while_drifting: int | None = Field(default=3, ge=1)
    """While drift persists (each of the newest ``drift_persist_days`` days drifted
    significantly, none enough to restart), train on only the last this-many days: gradual drift
    moves the mean every day, and a long window would teach where it was. The window widens
    again after a day without significant drift. None: never shrink."""
    drift_persist_days: int = Field(default=2, ge=1)
    """Consecutive significantly-drifted days that count as persistent drift."""
    eval_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    """Share of rows (hashed by timestamp) held out for early stopping and the evaluation gate."""
    epochs: int | None = Field(default=None, ge=1)
    """Autoencoder epochs; None adapts them to the window: about 3,000 gradient steps, 2-200
    epochs (early stopping ends sooner), so a small window is not under-trained."""
    batch_size: int | None = Field(default=None, ge=1)
    """None adapts it to the window: rows / 64 rounded to a power of two, 32-1024."""
    learning_rate: float = Field(default=3e-3, gt=0.0)
    detector_weights: dict[Literal["tails", "knn", "copula_knn", "autoencoder"], float] = Field(
        default={"tails": 1.0, "knn": 1.0, "copula_knn": 1.0, "autoencoder": 0.25}
    )
    """Weight of each part of the detector ensemble (0 drops a part); docs/detector.md."""
    adaptive_autoencoder_weight: bool = True
    """Grow the autoencoder's weight (up to 8x) when the window's features predict each
    other linearly (mean R^2 0.8 -> 0.9): correlated sensors, where broken correlations are
    the anomalies (docs/detector.md)."""
    trim_share: float = Field(default=0.05, ge=0.0, lt=0.5)
    """Share of the window's training rows the first fit scores highest that are dropped
    before every part is refitted (a window is contaminated by its own anomalies); 0: one
    fit."""
    neighbours: int = Field(default=100, ge=1)
    """k of the kNN parts per 2,048 window rows (or all of them, when fewer), scaled to the
    reference sample; at most half the sample."""
    reference_rows: int = Field(default=512, ge=8)
    """Rows of the kNN reference sample kept in the model. Scoring cost grows with it; 512
    ranked as 2,048 did on the bundled tables at ~10x the scoring speed (docs/detector.md)."""
    early_stopping_patience: int = Field(default=5, ge=0)
    hidden_units: list[int] | None = None
    """Encoder layer widths ending with the bottleneck; None derives them from the feature count."""
    seed: int = 42
    threshold_quantile: float = Field(default=0.99, gt=0.5, lt=1.0)
    """Quantile of held-out normal rows' scores that becomes the alarm threshold."""
    no_regression_margin: float = Field(default=0.02, ge=0.0, le=1.0)
    """Blessed iff AUC-PR >= the blessed model's minus this (without labels: mean score <=
    the blessed model's x (1 + this))."""
    stale_false_alarm_rate: float | None = Field(default=0.05, gt=0.0, lt=1.0)
    """The blessed model is stale, and any sane candidate replaces it, when at the threshold it
    is served with it alarms on more than this share of the normal held-out rows (it was
    calibrated for ``1 - threshold_quantile``). None: only the AUC-PR comparison decides."""
    min_eval_rows: int = Field(default=50, ge=1)
    allowed_anomaly_types: list[str] = []
    """ExampleValidator anomaly types (e.g. ``SCHEMA_NEW_COLUMN``) that do not fail the run."""
    metadata_db_url: SecretStr | None = None
    """ML Metadata on a server (``mysql://u:p@host:3306/db``, ``postgresql://...``);
    None means SQLite at ``metadata_path``."""
    notify_timeout_s: float = Field(default=60.0, gt=0.0)
    """How long the serving notifier waits for the API to serve the pushed version."""
    notify_poll_interval_s: float = Field(default=2.0, gt=0.0)
    enable_cache: bool = True

    @model_validator(mode="after")
    def _stale_rate_above_calibration(self) -> TrainingSettings:
        promised = 1.0 - self.threshold_quantile
        if self.stale_false_alarm_rate is not None and self.stale_false_alarm_rate <= promised:
            raise ValueError(
                f"stale_false_alarm_rate ({self.stale_false_alarm_rate}) must exceed the false-alarm "
                f"rate the threshold is calibrated for (1 - threshold_quantile = {promised:.4g}), "
                "or every blessed model would count as stale"
            )
        return self


class OrchestrationSettings(BaseModel):
    """How Airflow runs the TFX pipeline (``ANOMALYOPS_ORCHESTRATION__*``); see docs/orchestration.md."""

    compiled_dir: Path | None = None
    """Where ``anomalyops compile-pipeline`` writes the IR; None means ``<pipeline_root>/compiled``."""
    preload_tensorflow: bool = False
    """Import TensorFlow/TFX once in the Airflow scheduler (plugin; LocalExecutor forks tasks)."""
    retries: int = Field(default=2, ge=0)
    retry_delay_s: float = Field(default=30.0, ge=0.0)
    skip_beam_sdist: bool = True
    """With an in-process Beam runner, do not build TFX's ``tfx_ephemeral`` sdist per component."""


class ValidationSettings(BaseModel):
    """The data-quality gate (``ANOMALYOPS_VALIDATION__*``); see docs/validation.md."""

    gx_root: Path = PROJECT_ROOT / "gx"
    """The Great Expectations file data context (committed; its ``uncommitted/`` is not)."""
    schema_path: Path = PROJECT_ROOT / "config" / "schema" / "schema.pbtxt"
    """The curated TFDV schema (``anomalyops schema infer`` regenerates it)."""
    data_docs_dir: Path | None = None
    """Where GX builds Data Docs; None means ``<lake>/reports/data_docs`` for a local lake,
    else ``<gx_root>/uncommitted/data_docs/local_site``."""
    drift_policy: Literal["warn", "block"] = "warn"
    """What a drifted feature does: ``warn`` emails and promotes, ``block`` quarantines."""
    drift_policy_by_feature: dict[str, Literal["warn", "block"]] = {}
    """Per-check overrides of ``drift_policy``, keyed by column name."""
    drift_alpha: float = Field(default=0.01, gt=0.0, lt=1.0)
    """False drift warnings allowed per day when nothing drifts: a feature drifted when its
    p-value, Bonferroni-corrected over the day's tests, is below this."""
    drift_reference_days: int = Field(default=7, ge=1)
    """A day is compared with the pooled last this-many validated days (since the newest
    regime start): several days reveal gradual drift and calibrate day-to-day variation."""
    drift_min_calibration_days: int = Field(default=3, ge=2)
    """Reference days needed to measure how much whole days differ when nothing drifts."""
    drift_uncalibrated_min_effect: float = Field(default=0.7, gt=0.0, le=1.0)
    """With fewer reference days than ``drift_min_calibration_days`` (a new lake, the days
    after a regime start) day-to-day variation is unknown: only a KS statistic this large counts."""
    drift_residual_test: bool = True
    """Also test each feature's residual given the other features (a sensor leaving the
    sensors it moved with); needs two features or more."""
    drift_reference_max_rows: int = Field(default=20_000, ge=100)
    """Rows sampled (seeded) from each reference day: bounds the gate's memory and time."""
    unexpected_examples: int = Field(default=5, ge=0, le=20)
    """How many offending values each failed expectation quotes in gate.json and emails."""


class IngestSettings(BaseModel):
    """Limits on the files users drop in ``landing/`` (``ANOMALYOPS_INGEST__*``); see
    docs/security.md. A file over a limit is refused with the limit named, before (or as soon
    as) reading it would cost more."""

    max_file_bytes: int = Field(default=2 * 1024**3, ge=1)
    """Largest landing file accepted, as stored (compressed) on disk; checked before reading."""
    max_decompressed_bytes: int = Field(default=1024**3, ge=1)
    """Largest content one file may expand to: a ``.csv.gz`` decompressed, a Parquet file's
    uncompressed column data (from its footer). Stops gzip and Parquet bombs."""
    max_rows: int = Field(default=5_000_000, ge=1)
    """Most rows one landing file may hold. Memory is what this bounds: a day is conformed in
    memory, ~0.6 GiB peak per million rows of the demo's 10 columns (2 M rows: 1.2 GiB, 20 s)."""
    max_files: int = Field(default=1000, ge=1)
    """Most readable files one day's ``landing/<date>/`` may hold."""


class LandingSettings(BaseModel):
    """When a day's files in ``landing/<date>/`` count as complete (``ANOMALYOPS_LANDING__*``);
    see the README, "When your files arrive". Only with ``ANOMALYOPS_SOURCE=landing``:
    the simulator writes its day whole."""

    ready_marker: str | None = "_READY"
    """A file whose presence says the day is complete (the feed writes it last); null: no marker."""
    quiet_period_s: float | None = Field(default=600.0, gt=0.0)
    """Without the marker, a day is complete once no readable file in it has changed for this
    long (for feeds that cannot write a marker); null: wait for the marker only."""
    deadline_h: float = Field(default=6.0, ge=0.0)
    """Hours after the end of the day (UTC midnight after ``ds``) to wait for its files; past
    it the ``land`` task emails a "data late" alert and fails."""
    poke_interval_s: float = Field(default=60.0, gt=0.0)
    """How often the triggerer looks at the folder while it waits."""

    @model_validator(mode="after")
    def _something_decides(self) -> LandingSettings:
        if not self.ready_marker and self.quiet_period_s is None:
            raise ValueError(
                "ANOMALYOPS_LANDING__READY_MARKER and __QUIET_PERIOD_S are both null: nothing "
                "would ever mark a day complete; set at least one"
            )
        if self.ready_marker and ("/" in self.ready_marker or self.ready_marker in (".", "..")):
            raise ValueError(
                f"ANOMALYOPS_LANDING__READY_MARKER={self.ready_marker!r} must be a plain file "
                "name inside the day's folder"
            )
        return self


class MonitoringSettings(BaseModel):
    """The daily served-traffic check (``ANOMALYOPS_MONITORING__*``); see docs/operations.md."""

    max_alarm_ratio: float = Field(default=5.0, gt=1.0)
    """A day is above its band when the lower end of the 99 % interval of its alarm rate
    exceeds this many times the rate the served model was calibrated for."""
    min_rows: int = Field(default=1000, ge=1)
    """Fewer rows scored in a day than this: too few to judge, no alert."""
    timeout_s: float = Field(default=30.0, gt=0.0)
    """How long the check waits for the scoring API."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ANOMALYOPS_",
        env_nested_delimiter="__",
        env_parse_none_str="null",  # ``...=null`` unsets an optional setting
        extra="forbid",
        frozen=True,
    )

    environment: Literal["development", "production"] = "development"
    lake_root: str = str(PROJECT_ROOT / "data_lake")
    """A local path or any fsspec URL (``s3://bucket/lake``, ``memory://lake``)."""
    lake_lock: LakeLockSettings = Field(default_factory=LakeLockSettings)
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
    serving_keep_versions: int = Field(default=10, ge=1)
    """Retention: after a push the Pusher keeps the newest this many versions, plus the ones
    the scoring service serves or has pinned, and deletes the rest."""
    serving_stale_tmp_s: float = Field(default=86400.0, gt=0.0)
    """A push's temp dir older than this belongs to a push that died; retention removes it."""
    api_url: str | None = None
    """Where the scoring service listens; None means no service to notify after a push."""
    api_admin_key: SecretStr | None = None
    beam_args: list[str] = DEFAULT_BEAM_ARGS
    training: TrainingSettings = TrainingSettings()
    orchestration: OrchestrationSettings = OrchestrationSettings()
    validation: ValidationSettings = ValidationSettings()
    ingest: IngestSettings = IngestSettings()
    landing: LandingSettings = LandingSettings()
    monitoring: MonitoringSettings = MonitoringSettings()

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
            secret = self.smtp.password.get_secret_value() if self.smtp.password else ""
            if (self.smtp.user or secret) and not (self.smtp.starttls or self.smtp.ssl):
                # Else the login goes over the network in clear text (AUTH PLAIN/LOGIN).
                raise ValueError(
                    "SMTP credentials (ANOMALYOPS_SMTP__USER/__PASSWORD) need TLS in production: "
                    "set ANOMALYOPS_SMTP__STARTTLS=true (port 587) or ANOMALYOPS_SMTP__SSL=true "
                    "(port 465), or leave the credentials empty"
                )
        return self

    @property
    def mlmd_path(self) -> Path:
        return self.metadata_path or self.pipeline_root / "metadata.sqlite"

    @property
    def compiled_pipeline_dir(self) -> Path:
        return self.orchestration.compiled_dir or self.pipeline_root / "compiled"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
