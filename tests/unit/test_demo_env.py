"""make run's Airflow settings on each line: Airflow 2's webserver, Airflow 3's api-server."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from anomalyops_airflow import env as airflow_env_module
from anomalyops_devtools import demo, demo_env
from anomalyops_devtools.demo_env import DemoConfig


@pytest.fixture
def var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Secrets and the passwords file under a temporary var/, not the checkout's."""
    monkeypatch.setattr(demo_env, "VAR", tmp_path)
    monkeypatch.setattr(demo_env, "PASSWORDS_FILE", tmp_path / "secrets" / "passwords.json")
    return tmp_path


@pytest.mark.parametrize("major", [2, 3])
def test_demo_env_speaks_the_installed_line(var, monkeypatch, major):
    monkeypatch.setattr(demo_env, "airflow_major", lambda: major)
    monkeypatch.setattr(airflow_env_module, "airflow_major", lambda: major)
    for name in list(demo_env.os.environ):
        if name.startswith(("AIRFLOW__", "ANOMALYOPS_AIRFLOW_API")):
            monkeypatch.delenv(name)
    env = demo_env.demo_env(DemoConfig(web_port=18080))
    if major == 2:
        assert env["AIRFLOW__WEBSERVER__WEB_SERVER_PORT"] == "18080"
        assert env["AIRFLOW__WEBSERVER__WEB_SERVER_HOST"] == "127.0.0.1"
        assert env["AIRFLOW__WEBSERVER__SECRET_KEY"]
        assert env["AIRFLOW__WEBSERVER__EXPOSE_CONFIG"] == "False"
        assert env["AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL"] == "60"
        assert env["AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL"] == "30"
        assert env["AIRFLOW__CORE__EXECUTOR"] == "SequentialExecutor"
        assert not any(k.startswith(("AIRFLOW__API", "AIRFLOW__DAG_PROCESSOR")) for k in env)
        assert "AIRFLOW__CORE__AUTH_MANAGER" not in env
    else:
        assert not any(k.startswith("AIRFLOW__WEBSERVER__") for k in env)
        assert (env["AIRFLOW__API__HOST"], env["AIRFLOW__API__PORT"]) == ("127.0.0.1", "18080")
        assert env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:18080"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
        assert env["AIRFLOW__API__SECRET_KEY"] and env["AIRFLOW__API_AUTH__JWT_SECRET"]
        assert env["AIRFLOW__API__SECRET_KEY"] != env["AIRFLOW__API_AUTH__JWT_SECRET"]
        assert env["AIRFLOW__API__EXPOSE_CONFIG"] == "False"
        assert env["AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL"] == "60"
        assert env["AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL"] == "30"
        assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("simple_auth_manager.SimpleAuthManager")
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"].startswith(str(var))
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        # readmit reaches this api-server as the UI's admin.
        assert env["ANOMALYOPS_AIRFLOW_API_URL"] == env["AIRFLOW__API__BASE_URL"]
        assert env["ANOMALYOPS_AIRFLOW_API_PASSWORD"] == demo_env.secret("airflow-admin-password")


def test_the_passwords_file_holds_the_admins_password_readable_only_by_its_owner(var):
    demo_env.write_passwords_file("pw-1")
    demo_env.write_passwords_file("pw-2")  # a re-run rewrites it
    path = demo_env.PASSWORDS_FILE
    assert json.loads(path.read_text()) == {"admin": "pw-2"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


_STATE_LINE = (
    "[2026-12-02 10:00:01] INFO - Marking task as SUCCESS. dag_id=anomalyops_train, "
    "task_id=Trainer, run_id=manual__x, logical_date=20261202T100000"
)
_END_LINE = "2026-12-02T10:00:01Z [info     ] [DAG TEST] end task task_id=Pusher map_index=-1"


@pytest.mark.parametrize(
    ("line", "af3", "ended"),
    [
        (_STATE_LINE, False, ("Trainer", "success")),
        (_STATE_LINE, True, ("Trainer", "success")),
        (_END_LINE, True, ("Pusher", "done")),
        # Airflow 2 logs this line too, after the state line: one progress line per task.
        (_END_LINE, False, None),
        ("[DAG TEST] starting task_id=Pusher map_index=-1", True, None),
    ],
)
def test_dags_test_task_ends_are_recognised_on_both_lines(line, af3, ended):
    assert demo._task_ended(line, af3) == ended
