"""The real ingestion DAG, run in-process with dag.test() for two dates, then re-run."""

import datetime as dt

from anomalyops.lake import Lake, Zone
from anomalyops_airflow import compat
from tests.helpers.common import REPO_ROOT, point_smtp_at


def _run(dag, day: dt.date):
    from airflow.utils.state import DagRunState

    run = compat.dag_test(dag, dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc))
    assert run.state == DagRunState.SUCCESS, run
    return run


def test_two_days_then_an_idempotent_rerun(airflow_db, settings_env, mail_sink, monkeypatch):
    point_smtp_at(monkeypatch, mail_sink.port)  # drift warnings must reach a real server
    s = settings_env()
    dag = compat.dag_bag(REPO_ROOT / "dags" / "anomalyops_ingest.py").dags["anomalyops_ingest"]
    lake = Lake(s.lake_root)
    days = [dt.date(2026, 11, 5), dt.date(2026, 11, 6)]
    for day in days:
        _run(dag, day)
    assert lake.partitions(Zone.RAW) == days
    before = {d: lake.read_table(Zone.RAW, d) for d in days}

    _run(dag, days[0])
    assert lake.partitions(Zone.RAW) == days
    for d in days:
        assert lake.read_table(Zone.RAW, d).equals(before[d])
    assert len(lake.read_table(Zone.RAW, days[0])) == 288  # replaced, not appended
