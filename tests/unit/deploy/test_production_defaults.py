"""Production defaults of the deployment (issue #11): UIs without a login stay on loopback,
only task runners write served models, SMTP credentials need TLS, and the Airflow admin
password is never on a command line."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.compose import REPO_ROOT, load_raw, volume_mounts

WRITERS = {"airflow-init", "airflow-scheduler", "airflow-worker"}
"""Where the Pusher can run (tasks: the scheduler under LocalExecutor, Celery workers) and the
init job that creates the volume."""


def test_uis_without_a_login_are_published_on_loopback_only():
    services = load_raw()["services"]
    for name in ("mailpit", "flower"):
        for port in services[name]["ports"]:
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} ignores BIND_ADDRESS"
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    for name in ("mailpit", "flower"):
        block = text.split(f"\n  {name}:\n", 1)[1].split("\n  # ---", 1)[0]
        assert "loopback only" in block, f"{name}: say why it is pinned to loopback"


def test_only_task_runners_mount_the_served_models_read_write():
    services = load_raw()["services"]
    for name, service in services.items():
        for source, target, read_only in volume_mounts(service):
            if source != "serving":
                continue
            if name in WRITERS:
                assert not read_only, f"{name} runs the Pusher: it must write {target}"
            else:
                assert read_only, f"{name} does not push models but mounts {target} read-write"
    assert {n for n, s in services.items() if any(m[0] == "serving" for m in volume_mounts(s))} >= (
        WRITERS | {"api", "airflow-webserver"}
    )


@pytest.mark.parametrize(
    ("smtp", "ok"),
    [
        ({"USER": "alerts", "PASSWORD": "pw"}, False),
        ({"USER": "alerts", "PASSWORD": "pw", "STARTTLS": "true"}, True),
        ({"USER": "alerts", "PASSWORD": "pw", "SSL": "true", "PORT": "465"}, True),
        ({"USER": "", "PASSWORD": ""}, True),  # the compose default: no login (Mailpit)
        ({"PASSWORD": "pw"}, False),
    ],
)
def test_production_refuses_smtp_credentials_without_tls(monkeypatch, smtp, ok):
    from pydantic import ValidationError

    from anomalyops.settings import Settings

    for key in list(os.environ):
        if key.startswith("ANOMALYOPS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ANOMALYOPS_ENVIRONMENT", "production")
    monkeypatch.setenv("ANOMALYOPS_SMTP__HOST", "smtp.example.com")
    monkeypatch.setenv("ANOMALYOPS_SMTP__PORT", "587")
    for key, value in smtp.items():
        monkeypatch.setenv(f"ANOMALYOPS_SMTP__{key}", value)
    if ok:
        Settings()
    else:
        with pytest.raises(
            ValidationError, match=r"ANOMALYOPS_SMTP__STARTTLS.*ANOMALYOPS_SMTP__SSL"
        ):
            Settings()
    monkeypatch.setenv("ANOMALYOPS_ENVIRONMENT", "development")
    Settings()  # development (a local sink) is not refused


_PASSWORD_FLAG = re.compile(r"users\s+create[^\n]*(\\\n[^\n]*)*\s(-p|--password)\b")


def test_no_script_puts_the_admin_password_on_a_command_line():
    scripts = [
        *(REPO_ROOT / "docker" / "entrypoints").glob("*.sh"),
        *(REPO_ROOT / "scripts").glob("*.sh"),
    ]
    for script in scripts:
        assert not _PASSWORD_FLAG.search(script.read_text()), script
    demo = (REPO_ROOT / "src" / "anomalyops_devtools" / "demo.py").read_text()
    block = demo.split('"users",', 1)[1].split("check=False", 1)[0]
    assert '"-p"' not in block and '"--password"' not in block


def test_the_admin_user_script_hands_the_password_over_on_stdin(airflow_db, tmp_path):
    """Run the script against this session's migrated Airflow DB with ``airflow`` wrapped by a
    shim that records every argument list; the password must be in none and still work."""
    password = "s3cret-never-in-argv"
    shim = tmp_path / "bin"
    shim.mkdir()
    record = tmp_path / "argv.log"
    real = Path(sys.executable).parent / "airflow"
    (shim / "airflow").write_text(
        f'#!/usr/bin/env bash\nprintf "%s\\n" "$*" >> "{record}"\nexec "{real}" "$@"\n'
    )
    (shim / "airflow").chmod(0o755)
    env = os.environ | {
        "PATH": f"{shim}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "AIRFLOW_ADMIN_USERNAME": "durability-admin",
        "AIRFLOW_ADMIN_PASSWORD": password,
    }
    script = REPO_ROOT / "docker" / "entrypoints" / "airflow-admin-user.sh"
    out = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "creating admin user 'durability-admin'" in out.stdout
    calls = record.read_text()
    assert "users create" in calls and password not in calls
    db = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        (hashed,) = conn.execute(
            "SELECT password FROM ab_user WHERE username = ?", ("durability-admin",)
        ).fetchone()
    from werkzeug.security import check_password_hash

    assert check_password_hash(hashed, password)
    again = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0 and "exists" in again.stdout
