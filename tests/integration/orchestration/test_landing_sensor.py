"""The ingest DAG's ``land`` task in landing mode, run by ``dag.test()`` (triggers inline).

It waits, deferred, for files and their ``_READY`` marker; at the deadline it emails one
"data late" alert and fails without retries, whether the deadline had already passed when
the task started or passed while the trigger was waiting.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from anomalyops.lake import Lake
from tests.helpers.common import point_smtp_at

pytestmark = pytest.mark.timeout(300)
UTC = dt.timezone.utc


@pytest.fixture
def landing_env(airflow_db, settings_env, mail_sink, monkeypatch):
    point_smtp_at(monkeypatch, mail_sink.port)
    monkeypatch.setenv("ANOMALYOPS_SOURCE", "landing")
    monkeypatch.setenv("ANOMALYOPS_LANDING__POKE_INTERVAL_S", "0.2")
    monkeypatch.setenv("ANOMALYOPS_LANDING__QUIET_PERIOD_S", "null")
    settings_env.cache_clear()
    return settings_env


def _dag(dag_id: str):
    from airflow import DAG

    from anomalyops_airflow import alerting
    from anomalyops_airflow.landing import LandingSensor

    with DAG(
        dag_id,
        schedule="@daily",
        start_date=dt.datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        # Retries as in the real DAG: a late day must fail at once all the same.
        default_args={"on_failure_callback": alerting.on_failure_callback, "retries": 2},
    ) as dag:
        LandingSensor(task_id="land")
    return dag


def _run(dag, day: dt.date):
    run = dag.test(execution_date=dt.datetime.combine(day, dt.time(), tzinfo=UTC))
    return run, run.get_task_instance("land")


def _drop(settings, day: dt.date, *, marker: bool, delay: float = 0.0) -> threading.Thread:
    lake = Lake(settings.lake_root)

    def write():
        time.sleep(delay)
        folder = lake.landing_path(day)
        lake.fs.makedirs(folder, exist_ok=True)
        lake.fs.pipe_file(f"{folder}/export.csv", b"x\n1\n")
        if marker:
            lake.fs.pipe_file(f"{folder}/_READY", b"")

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_waits_deferred_until_the_marker_then_returns_the_files(landing_env, mail_sink):
    from airflow.utils.state import DagRunState

    settings = landing_env()
    today = dt.datetime.now(UTC).date()  # its deadline is a day away
    writer = _drop(settings, today, marker=True, delay=1.5)
    started = time.monotonic()
    run, ti = _run(_dag("landing_waits"), today)
    writer.join()
    assert run.state == DagRunState.SUCCESS, run
    assert time.monotonic() - started >= 1.5  # it waited for the files, it did not fail
    assert ti.xcom_pull(task_ids="land") == ["export.csv"]
    assert ti.try_number == 1 and mail_sink.messages() == []


def test_a_deadline_already_past_alerts_once_and_fails(landing_env, mail_sink, monkeypatch):
    from airflow.utils.state import DagRunState, TaskInstanceState

    monkeypatch.setenv("ANOMALYOPS_LANDING__DEADLINE_H", "0")
    settings = settings_env_refresh(landing_env)
    day = dt.date(2026, 11, 5)
    _drop(settings, day, marker=False).join()  # a file, but never marked complete
    run, ti = _run(_dag("landing_late"), day)
    assert run.state == DagRunState.FAILED
    assert ti.state == TaskInstanceState.FAILED and ti.try_number == 1  # not up for retry
    (mail,) = mail_sink.wait_for(1)
    time.sleep(0.5)
    assert len(mail_sink.messages()) == 1  # the failure callback did not add a second email
    assert (
        mail["Subject"]
        == "[anomalyops] data late: 2026-11-05 had not arrived by 2026-11-06 00:00 UTC"
    )
    text = mail.get_body(("plain",)).get_content()
    assert "export.csv" in text and "waiting for _READY" in text
    assert "landing/2026-11-05/" in text and "clear the land task" in text


def test_a_deadline_passing_while_deferred_alerts(landing_env, mail_sink, monkeypatch):
    from airflow.utils.state import DagRunState

    yesterday = dt.datetime.now(UTC).date() - dt.timedelta(days=1)
    day_end = dt.datetime.combine(yesterday + dt.timedelta(days=1), dt.time(), tzinfo=UTC)
    grace = (dt.datetime.now(UTC) + dt.timedelta(seconds=2) - day_end).total_seconds() / 3600
    monkeypatch.setenv("ANOMALYOPS_LANDING__DEADLINE_H", f"{grace:.6f}")
    settings_env_refresh(landing_env)
    started = time.monotonic()
    run, _ = _run(_dag("landing_late_while_waiting"), yesterday)
    assert run.state == DagRunState.FAILED
    assert time.monotonic() - started >= 1.0  # deferred first, then the trigger hit the deadline
    (mail,) = mail_sink.wait_for(1)
    assert mail["Subject"].startswith(f"[anomalyops] data late: {yesterday}")
    assert "does not exist yet" in mail.get_body(("plain",)).get_content()


def settings_env_refresh(get_settings):
    get_settings.cache_clear()
    return get_settings()
