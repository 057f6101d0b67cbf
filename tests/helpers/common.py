"""Small helpers shared by every room: the repo root, a free loopback port, SMTP redirection."""

from __future__ import annotations

import socket
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def point_smtp_at(monkeypatch, port: int) -> None:
    """Point our SMTP settings, and Airflow's smtp_default connection derived from them, at a loopback port."""
    from anomalyops.settings import SmtpSettings, get_settings
    from anomalyops_airflow.env import smtp_airflow_env

    monkeypatch.setenv("ANOMALYOPS_SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("ANOMALYOPS_SMTP__PORT", str(port))
    for key, value in smtp_airflow_env(SmtpSettings(host="127.0.0.1", port=port)).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
