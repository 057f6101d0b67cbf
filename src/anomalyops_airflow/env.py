"""The embedded Airflow configuration: SQLite metadata, this repo's DAGs and plugins.

One function builds it so that the run command, the tests and the containers agree. Values
already set in the environment win, so a deployment can point Airflow anywhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from anomalyops.settings import PROJECT_ROOT, SmtpSettings


def airflow_major() -> int:
    """The installed Airflow's major version, read without importing Airflow (2 if absent)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("apache-airflow").split(".", 1)[0])
    except PackageNotFoundError:
        return 2


def airflow_env(home: Path | None = None, *, root: Path = PROJECT_ROOT) -> dict[str, str]:
    home = Path(home or os.environ.get("AIRFLOW_HOME") or root / "var" / "airflow")
    af3 = airflow_major() >= 3
    defaults = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # Airflow 3 has no SequentialExecutor; its LocalExecutor runs on SQLite.
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor" if af3 else "SequentialExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS": "False",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
        # Airflow 3 moved both: parsing to the dag-processor (no fallback to the old key), the
        # UI's options to the api-server's [api] section.
        (
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL"
            if af3
            else "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL"
        ): "60",
        ("AIRFLOW__API__EXPOSE_CONFIG" if af3 else "AIRFLOW__WEBSERVER__EXPOSE_CONFIG"): "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        # Airflow 3 warns (on stdout) about the 2.x path, which it maps to the task SDK's class.
        "AIRFLOW__CORE__XCOM_BACKEND": (
            "airflow.sdk.bases.xcom.BaseXCom" if af3 else "airflow.models.xcom.BaseXCom"
        ),
        # No telemetry or update checks: the machines here have no internet.
        "SCARF_ANALYTICS": "false",
        "AIRFLOW__CORE__ANALYTICS_ENABLED": "False",
    }
    defaults.update(smtp_airflow_env())
    return {k: os.environ.get(k, v) for k, v in defaults.items()}


SMTP_CONN_ID = "smtp_default"
"""The one Airflow connection alerts are sent through (``anomalyops_airflow.alerting.send``)."""


def smtp_connection(smtp: SmtpSettings) -> dict:
    """The ``smtp_default`` connection, in Airflow's JSON form, built from ``ANOMALYOPS_SMTP__*``.

    Read by the SMTP provider's ``SmtpHook``: host, port, login/password (only when both are
    set) and the extras ``disable_tls``/``disable_ssl`` (the hook's defaults are STARTTLS and
    SSL *on*, so both are always written), ``timeout``, ``retry_limit`` and ``from_email``.
    """
    conn: dict = {"conn_type": "smtp", "host": smtp.host, "port": smtp.port}
    if smtp.user and smtp.password:
        conn["login"] = smtp.user
        conn["password"] = smtp.password.get_secret_value()
    conn["extra"] = {
        "disable_tls": not smtp.starttls,
        "disable_ssl": not smtp.ssl,
        "timeout": max(1, round(smtp.timeout_s)),
        # A down server must not hold a task for minutes: the gate records and fails instead.
        "retry_limit": 2,
        "from_email": smtp.mail_from,
    }
    return conn


def smtp_airflow_env(smtp: SmtpSettings | None = None) -> dict[str, str]:
    """``AIRFLOW_CONN_SMTP_DEFAULT`` derived from ``ANOMALYOPS_SMTP__*`` (the one source).

    Airflow's ``[smtp]`` section is not written: alerts go through the SMTP provider's hook,
    which reads everything from this connection. ``airflow_env()`` keeps the variable when it is
    already set; a custom secrets backend is searched before environment variables, a
    connection stored in Airflow's database after them.
    """
    if smtp is None:
        from anomalyops.settings import Settings

        smtp = Settings().smtp
    return {"AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(smtp_connection(smtp), sort_keys=True)}
