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

from anomalyops_airflow.env import airflow_env, airflow_major
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


SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)
ADMIN_USER = "admin"
PASSWORDS_FILE = VAR / "secrets" / "simple_auth_manager_passwords.json"
"""Airflow 3's SimpleAuthManager reads the UI users' passwords from here (JSON, user -> password)."""


def airflow_webserver_env(cfg: DemoConfig) -> dict[str, str]:
    """Airflow 2: the Flask webserver (its users are created with ``airflow users create``)."""
    return {
        "AIRFLOW__WEBSERVER__WEB_SERVER_HOST": "127.0.0.1",
        "AIRFLOW__WEBSERVER__WEB_SERVER_PORT": str(cfg.web_port),
        "AIRFLOW__WEBSERVER__SECRET_KEY": secret("airflow-webserver-key"),
        "AIRFLOW__WEBSERVER__WORKERS": "1",
        "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "30",
    }


def airflow_ui_env(cfg: DemoConfig) -> dict[str, str]:
    """Airflow 3: the api-server (UI, REST API and the tasks' execution API) and its auth.

    The ``[webserver]`` options moved to ``[api]``; the JWTs the api-server and the scheduler
    (for task workers) sign share ``[api_auth] jwt_secret``; SimpleAuthManager replaces FAB's
    user table with ``[core] simple_auth_manager_users`` and a passwords file
    (:func:`write_passwords_file`). Task workers reach the execution API on the loopback URL.
    """
    base = f"http://127.0.0.1:{cfg.web_port}"
    return {
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(cfg.web_port),
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        "AIRFLOW__API__SECRET_KEY": secret("airflow-webserver-key"),
        "AIRFLOW__API_AUTH__JWT_SECRET": secret("airflow-jwt-secret"),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(PASSWORDS_FILE),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        # readmit (anomalyops_airflow.events) posts asset events to this api-server as admin.
        "ANOMALYOPS_AIRFLOW_API_URL": base,
        "ANOMALYOPS_AIRFLOW_API_USER": ADMIN_USER,
        "ANOMALYOPS_AIRFLOW_API_PASSWORD": secret("airflow-admin-password"),
    }


def write_passwords_file(password: str) -> None:
    """SimpleAuthManager's passwords file with the admin's password (it would generate one).

    Written before the api-server starts: it only adds users missing from the file.
    """
    PASSWORDS_FILE.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(PASSWORDS_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({ADMIN_USER: password}, f)
        f.write("\n")


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
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(airflow_ui_env(cfg) if airflow_major() >= 3 else airflow_webserver_env(cfg))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env
