"""The real ingest DAG (land -> ingest -> validate -> decide -> promote | quarantine) under
dag.test(), against a real SMTP server on loopback. Runs are few: each costs GX + TFDV."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from anomalyops.lake import Lake, Zone
from anomalyops.validation import report
from tests.helpers.common import REPO_ROOT, free_port, point_smtp_at


@pytest.fixture(scope="module")
def dag(airflow_db):
    from airflow.models import DAG, DagBag

    dag = DagBag(
        dag_folder=str(REPO_ROOT / "dags" / "anomalyops_ingest.py"), include_examples=False
    ).dags["anomalyops_ingest"]
    DAG.bulk_write_to_db([dag])  # registers its Dataset outlet, so events can be recorded
    return dag


def run(dag, day: dt.date):
    dagrun = dag.test(execution_date=dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc))
    states = {ti.task_id: ti.state for ti in dagrun.get_task_instances()}
    return dagrun.state, states


def body(msg) -> tuple[str, str]:
    return (
        msg.get_body(preferencelist=("plain",)).get_content(),
        msg.get_body(preferencelist=("html",)).get_content(),
    )


def dataset_events(day: dt.date) -> list[dict]:
    from airflow.models.dataset import DatasetEvent, DatasetModel
    from airflow.utils.session import create_session

    from anomalyops_airflow.datasets import VALIDATED

    with create_session() as session:
        rows = (
            session.query(DatasetEvent.extra)
            .join(DatasetModel, DatasetModel.id == DatasetEvent.dataset_id)
            .filter(DatasetModel.uri == VALIDATED.uri)
            .all()
        )
        return [extra for (extra,) in rows if extra.get("ds") == day.isoformat()]


def test_good_day_promoted_drifted_day_warns_and_rerun_is_idempotent(
    dag, gate_env, monkeypatch, mail_sink
):
    good, drifted = dt.date(2026, 11, 7), dt.date(2026, 11, 8)
    monkeypatch.setenv("ANOMALYOPS_SIMULATOR__SCENARIO", "sudden")
    monkeypatch.setenv("ANOMALYOPS_SIMULATOR__DRIFT_START", drifted.isoformat())
    gate_env.cache_clear()
    lake = Lake(gate_env().lake_root)

    state, states = run(dag, good)
    assert state == "success", states
    assert states["promote"] == "success" and states["quarantine"] == "skipped"
    assert states["notify_drift"] == "skipped"  # nothing to warn about
    gate = report.read_gate(lake, good)
    assert (gate["decision"], gate["outcome"]) == ("pass", "promoted")
    assert gate["drift"]["baseline"] is None and "first day" in gate["drift"]["note"]
    assert lake.exists(Zone.VALIDATED, good) and lake.exists(Zone.RAW, good)
    assert lake.read_table(Zone.VALIDATED, good).equals(lake.read_table(Zone.RAW, good))
    assert dataset_events(good), "promote did not update the validated Dataset"
    assert mail_sink.messages() == []

    state, states = run(dag, drifted)
    assert state == "success", states
    assert states["notify_drift"] == "success"
    gate = report.read_gate(lake, drifted)
    assert (gate["decision"], gate["outcome"]) == ("warn", "promoted")
    assert gate["drift"]["baseline"] == good.isoformat()
    flagged = [d for d in gate["drift"]["scores"] if d["drifted"]]
    assert flagged and all(d["value"] > d["threshold"] and d["p_value"] < 0.01 for d in flagged)
    assert lake.exists(Zone.VALIDATED, drifted)
    (msg,) = mail_sink.wait_for(1)
    assert "drift warning" in msg["Subject"] and f"ds={drifted}" in msg["Subject"]
    assert msg["X-Envelope-To"] == "ops@example.test, oncall@example.test"
    text, html = body(msg)
    for d in flagged:
        assert d["feature"] in text and f"{d['value']:.4f}" in text and d["feature"] in html
    assert "anomalyops_ingest" in text and "Logical date" in text and "2026-11-08" in text
    assert gate["reports"]["data_docs"] in text and gate["reports"]["statistics_html"] in text
    assert report.read_gate(lake, drifted)["alerts"][0]["sent"] is True

    before = lake.read_table(Zone.VALIDATED, good)
    state, states = run(dag, good)  # re-run: same zones, same decision, nothing appended
    assert state == "success", states
    assert lake.partitions(Zone.VALIDATED) == [good, drifted]
    assert lake.partitions(Zone.QUARANTINE) == []
    assert lake.read_table(Zone.VALIDATED, good).equals(before)
    assert report.read_gate(lake, good)["decision"] == "pass"
    assert len(mail_sink.messages()) == 1


def test_day_with_nulls_is_quarantined_with_reason_and_one_email(
    dag, gate_env, monkeypatch, mail_sink
):
    day = dt.date(2026, 11, 6)
    monkeypatch.setenv("ANOMALYOPS_SIMULATOR__CORRUPT_DAYS", json.dumps({day.isoformat(): "nulls"}))
    gate_env.cache_clear()
    lake = Lake(gate_env().lake_root)

    state, states = run(dag, day)
    assert state == "failed", states
    assert states["quarantine"] == "failed" and states["promote"] == "skipped"
    assert not lake.exists(Zone.RAW, day) and not lake.exists(Zone.VALIDATED, day)
    assert lake.exists(Zone.QUARANTINE, day)
    reason = report.read_reason(lake, day)
    assert reason["stage"] == "gate" and reason["decision"] == "fail"
    (failed,) = [
        f
        for f in reason["failed_expectations"]
        if f["expectation"] == "expect_column_values_to_not_be_null"
    ]
    assert failed["unexpected_count"] == 1440 // 5
    assert lake.read_table(Zone.QUARANTINE, day)[failed["column"]].isna().sum() == 1440 // 5
    gate = report.read_gate(lake, day)
    assert gate["outcome"] == "quarantined" and gate["alerts"][0]["sent"] is True
    (msg,) = mail_sink.wait_for(1)  # the task's alert only: the failure callback stays quiet
    assert "QUARANTINED" in msg["Subject"] and f"ds={day}" in msg["Subject"]
    text, html = body(msg)
    assert "expect_column_values_to_not_be_null" in text and failed["column"] in text
    assert f"{1440 // 5} of 1440 values" in text and f"{1440 // 5} of 1440 values" in html
    assert "anomalyops readmit 2026-11-06" in text and gate["reports"]["data_docs"] in text


def test_unparsable_day_fails_ingest_quarantines_files_and_alerts_with_log(
    dag, gate_env, monkeypatch, mail_sink
):
    day = dt.date(2026, 11, 9)
    monkeypatch.setenv(
        "ANOMALYOPS_SIMULATOR__CORRUPT_DAYS", json.dumps({day.isoformat(): "missing_column"})
    )
    gate_env.cache_clear()
    lake = Lake(gate_env().lake_root)

    state, states = run(dag, day)
    assert state == "failed", states
    assert states["ingest"] == "failed" and states["validate"] == "upstream_failed"
    reason = report.read_reason(lake, day)
    assert reason["stage"] == "ingest" and "missing column" in reason["problems"][0]
    assert not lake.exists(Zone.RAW, day) and not lake.exists(Zone.VALIDATED, day)
    (msg,) = mail_sink.wait_for(1)
    assert msg["Subject"].startswith("[anomalyops] task failed: anomalyops_ingest.ingest")
    text, _ = body(msg)
    assert reason["problems"][0] in text
    assert "/dags/anomalyops_ingest/grid?" in text and "task_id=ingest" in text  # ti.log_url
    # dag.test() logs to stdout, not to a file: no path rather than one to a file never written.
    assert any(line.startswith("Log file ") and line.endswith(": -") for line in text.splitlines())


def test_smtp_down_still_records_quarantines_and_fails(dag, gate_env, monkeypatch, mail_sink):
    day = dt.date(2026, 11, 10)
    monkeypatch.setenv(
        "ANOMALYOPS_SIMULATOR__CORRUPT_DAYS", json.dumps({day.isoformat(): "out_of_range"})
    )
    point_smtp_at(monkeypatch, free_port())  # nothing listens there
    lake = Lake(gate_env().lake_root)

    state, states = run(dag, day)
    assert state == "failed", states
    assert lake.exists(Zone.QUARANTINE, day)
    gate = report.read_gate(lake, day)
    assert gate["decision"] == "fail" and gate["outcome"] == "quarantined"
    assert any(
        f["expectation"] == "expect_column_values_to_be_between"
        for f in gate["expectations"]["failed"]
    )
    (alert,) = gate["alerts"]
    assert alert["sent"] is False and "Connection" in alert["error"]
    assert mail_sink.messages() == []


def test_dag_wiring(dag):
    """The gate sits after ingest; promote announces the Dataset; every task alerts on failure."""
    from anomalyops_airflow import alerting
    from anomalyops_airflow.datasets import VALIDATED

    assert dag.task_dict["ingest"].downstream_task_ids == {"validate"}
    assert dag.task_dict["decide"].downstream_task_ids == {"promote", "quarantine"}
    assert dag.task_dict["promote"].downstream_task_ids == {"notify_drift"}
    assert dag.task_dict["promote"].outlets == [VALIDATED]
    for task in dag.tasks:
        assert task.on_failure_callback in (
            alerting.on_failure_callback,
            [alerting.on_failure_callback],
        ), task.task_id
