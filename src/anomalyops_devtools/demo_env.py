"""The demo's scenario and the environment its services run with.

:class:`DemoConfig` says which days are simulated, which one is corrupt, where the drift
starts and which ports the services take; :func:`demo_env` turns it into the environment of
every process a run starts (embedded Airflow settings, simulator knobs, per-checkout secrets).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from dataclasses import dataclass, field

from anomalyops_airflow.env import airflow_env
from anomalyops_devtools.processes import BIN, VAR


@dataclass
class DemoConfig:
    days: int = 20
    corrupt_offset: int = 6
    drift_offset: int = 13
    api_port: int = 8000
    web_port: int = 8080
    smtp_port: int = 8025
    rows_per_day: int = 1440
    today: dt.date = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).date())

    @property
    def start(self) -> dt.date:
        return self.today - dt.timedelta(days=self.days)

    @property
    def end(self) -> dt.date:
        return self.today - dt.timedelta(days=1)

    @property
    def corrupt_day(self) -> dt.date:
        return self.start + dt.timedelta(days=self.corrupt_offset)

    @property
    def drift_day(self) -> dt.date:
        return self.start + dt.timedelta(days=self.drift_offset)


def secret(name: str) -> str:
    """A per-checkout development secret, generated once and kept under var/ (git-ignored)."""
    path = VAR / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def demo_env(cfg: DemoConfig) -> dict[str, str]:
    env = {**os.environ, **airflow_env()}
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "ANOMALYOPS_START_DATE": cfg.start.isoformat(),
            "ANOMALYOPS_SIMULATOR__ROWS_PER_DAY": str(cfg.rows_per_day),
            "ANOMALYOPS_SIMULATOR__SCENARIO": "sudden",
            "ANOMALYOPS_SIMULATOR__DRIFT_START": cfg.drift_day.isoformat(),
            "ANOMALYOPS_SIMULATOR__CORRUPT_DAYS": json.dumps(
                {cfg.corrupt_day.isoformat(): "nulls"}
            ),
            "ANOMALYOPS_SMTP__PORT": str(cfg.smtp_port),
            "ANOMALYOPS_API_URL": f"http://127.0.0.1:{cfg.api_port}",
            "ANOMALYOPS_API_ADMIN_KEY": secret("api-admin-key"),
            "ANOMALYOPS_API_KEYS": secret("api-key"),
            "AIRFLOW__WEBSERVER__WEB_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__WEBSERVER__WEB_SERVER_PORT": str(cfg.web_port),
            "AIRFLOW__WEBSERVER__SECRET_KEY": secret("airflow-webserver-key"),
            "AIRFLOW__WEBSERVER__WORKERS": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "30",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env
