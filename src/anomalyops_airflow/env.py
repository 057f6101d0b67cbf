"""The embedded Airflow configuration: SQLite metadata, this repo's DAGs and plugins.

One function builds it so that the run command, the tests and the containers agree. Values
already set in the environment win, so a deployment can point Airflow anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from anomalyops.settings import PROJECT_ROOT, SmtpSettings


def airflow_env(home: Path | None = None, *, root: Path = PROJECT_ROOT) -> dict[str, str]:
    home = Path(home or os.environ.get("AIRFLOW_HOME") or root / "var" / "airflow")
    defaults = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS": "False",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "60",
        "AIRFLOW__WEBSERVER__EXPOSE_CONFIG": "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__CORE__XCOM_BACKEND": "airflow.models.xcom.BaseXCom",
        # No telemetry or update checks: the machines here have no internet.
        "SCARF_ANALYTICS": "false",
        "AIRFLOW__CORE__ANALYTICS_ENABLED": "False",
    }
    defaults.update(smtp_airflow_env())
    return {k: os.environ.get(k, v) for k, v in defaults.items()}


def smtp_airflow_env(smtp: SmtpSettings | None = None) -> dict[str, str]:
    """Airflow's ``[smtp]`` settings derived from ``ANOMALYOPS_SMTP__*`` (the one source).

    Credentials, when ``ANOMALYOPS_SMTP__USER``/``PASSWORD`` are set, go to Airflow's fallback
    ``[smtp] smtp_user/smtp_password``; an ``smtp_default`` connection, if defined, wins.
    """
    if smtp is None:
        from anomalyops.settings import Settings

        smtp = Settings().smtp
    env = {
        "AIRFLOW__EMAIL__EMAIL_BACKEND": "airflow.utils.email.send_email_smtp",
        "AIRFLOW__SMTP__SMTP_HOST": smtp.host,
        "AIRFLOW__SMTP__SMTP_PORT": str(smtp.port),
        "AIRFLOW__SMTP__SMTP_STARTTLS": str(smtp.starttls),
        "AIRFLOW__SMTP__SMTP_SSL": str(smtp.ssl),
        "AIRFLOW__SMTP__SMTP_MAIL_FROM": smtp.mail_from,
        "AIRFLOW__SMTP__SMTP_TIMEOUT": str(max(1, round(smtp.timeout_s))),
        # A down server must not hold a task for minutes: the gate records and fails instead.
        "AIRFLOW__SMTP__SMTP_RETRY_LIMIT": "2",
    }
    if smtp.user and smtp.password:
        env["AIRFLOW__SMTP__SMTP_USER"] = smtp.user
        env["AIRFLOW__SMTP__SMTP_PASSWORD"] = smtp.password.get_secret_value()
    return env
