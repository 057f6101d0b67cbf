"""Each kind of bad day against the real checks (GX + TFDV), without the DAG around them:
the right zone, the right reason, the right email. Also re-admission and the committed files."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from anomalyops.ingest import ingest, land
from anomalyops.lake import Lake, Zone
from anomalyops.spec import load_spec
from anomalyops.validation import day_actions as actions
from anomalyops.validation import quality_gate as g
from anomalyops.validation import report
from anomalyops_airflow import alerting, tasks
from tests.helpers.common import REPO_ROOT

DAY = dt.date(2026, 11, 12)


def corrupt_day(monkeypatch, gate_env, kind: str | None):
    monkeypatch.setenv(
        "ANOMALYOPS_SIMULATOR__CORRUPT_DAYS", json.dumps({DAY.isoformat(): kind} if kind else {})
    )
    gate_env.cache_clear()
    return gate_env()


def victim_failures(gate: dict, type_: str) -> list[dict]:
    return [f for f in gate["expectations"]["failed"] if f["expectation"] == type_]


@pytest.mark.parametrize(
    "kind,expectation,tfdv_reason",
    [
        ("nulls", "expect_column_values_to_not_be_null", "FEATURE_TYPE_LOW_FRACTION_PRESENT"),
        ("out_of_range", "expect_column_values_to_be_between", "FLOAT_TYPE_BIG_FLOAT"),
    ],
)
def test_gate_catches_bad_values_and_quarantines_with_email(
    gate_env, monkeypatch, mail_sink, kind, expectation, tfdv_reason
):
    settings = corrupt_day(monkeypatch, gate_env, kind)
    lake = Lake(settings.lake_root)
    land(DAY, settings)
    ingest(DAY, settings)  # nulls and out-of-range values parse: they reach raw/
    gate = g.run_gate(DAY, settings)
    assert gate["decision"] == "fail"
    (failed,) = victim_failures(gate, expectation)
    assert failed["unexpected_count"] == 1440 // 5
    assert any(
        a["feature"] == failed["column"] and tfdv_reason in a["reasons"]
        for a in gate["tfdv"]["anomalies"]
    ), gate["tfdv"]["anomalies"]
    with pytest.raises(Exception, match="quarantined \\(alert sent\\)") as info:
        tasks.quarantine(DAY.isoformat(), dag=None, run_id="manual__x", logical_date=DAY)
    assert getattr(info.value, alerting.ALERTED_ATTR)
    assert lake.partitions(Zone.QUARANTINE) == [DAY] and lake.partitions(Zone.RAW) == []
    reason = report.read_reason(lake, DAY)
    assert reason["stage"] == "gate" and victim_failures(
        {"expectations": {"failed": reason["failed_expectations"]}}, expectation
    )
    (msg,) = mail_sink.wait_for(1)
    assert "QUARANTINED" in msg["Subject"]
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert expectation in text and failed["observed"] in text and failed["column"] in text
    # Data Docs and the TFDV page exist where gate.json says.
    assert gate["reports"]["data_docs"].startswith("file://")
    assert Lake(settings.lake_root).fs.exists(gate["reports"]["statistics_html"])


@pytest.mark.parametrize(
    "kind,problem",
    [
        ("missing_column", "missing column"),
        ("type_change", "units"),
        ("empty", "no rows"),
    ],
)
def test_unreadable_days_fail_ingest_and_the_callback_emails_the_problems(
    gate_env, monkeypatch, mail_sink, kind, problem
):
    from airflow.exceptions import AirflowFailException

    settings = corrupt_day(monkeypatch, gate_env, kind)
    lake = Lake(settings.lake_root)
    land(DAY, settings)
    with pytest.raises(AirflowFailException) as info:
        tasks.ingest(DAY.isoformat())
    reason = report.read_reason(lake, DAY)
    assert reason["stage"] == "ingest" and problem in " ".join(reason["problems"])
    assert lake.partitions(Zone.RAW) == [] and lake.partitions(Zone.VALIDATED) == []

    class TI:  # what the callback reads from Airflow's task instance
        dag_id, task_id, try_number, log_url = "anomalyops_ingest", "ingest", 1, "http://ui/log"

    alerting.on_failure_callback(
        {"exception": info.value, "task_instance": TI(), "ds": DAY.isoformat(), "run_id": "r"}
    )
    (msg,) = mail_sink.wait_for(1)
    assert msg["Subject"].startswith("[anomalyops] task failed: anomalyops_ingest.ingest")
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert reason["problems"][0] in text and "http://ui/log" in text
    assert msg["X-Envelope-To"] == "ops@example.test, oncall@example.test"


def test_raw_partition_written_by_other_means_is_still_type_checked(gate_env):
    """Defence in depth: a string feature and a dropped column in raw/ fail GX and TFDV."""
    settings = gate_env()
    spec = load_spec(settings.feature_spec_path)
    from anomalyops.sources.simulator import SimulatorConfig, simulate_day

    df = simulate_day(spec, DAY, SimulatorConfig(rows_per_day=1440))
    retyped, dropped = spec.feature_names[0], spec.feature_names[1]
    df[retyped] = df[retyped].map(lambda v: f"{v:.2f} units")
    Lake(settings.lake_root).write_table(Zone.RAW, DAY, df.drop(columns=[dropped]))
    gate = g.run_gate(DAY, settings)
    assert gate["decision"] == "fail"
    failed = {(f["expectation"], str(f["column"])) for f in gate["expectations"]["failed"]}
    assert ("expect_column_values_to_be_in_type_list", retyped) in failed
    assert ("expect_column_to_exist", dropped) in failed
    anomalies = {a["feature"]: a["reasons"] for a in gate["tfdv"]["anomalies"]}
    assert retyped in anomalies and "SCHEMA_MISSING_COLUMN" in anomalies[dropped]


def test_drift_blocks_when_the_policy_says_so_and_readmit_forces_with_a_recorded_reason(
    gate_env, monkeypatch
):
    baseline, drifted = dt.date(2026, 11, 7), dt.date(2026, 11, 8)
    monkeypatch.setenv("ANOMALYOPS_SIMULATOR__SCENARIO", "sudden")
    monkeypatch.setenv("ANOMALYOPS_SIMULATOR__DRIFT_START", drifted.isoformat())
    monkeypatch.setenv("ANOMALYOPS_VALIDATION__DRIFT_POLICY", "block")
    gate_env.cache_clear()
    settings = gate_env()
    lake = Lake(settings.lake_root)
    for day in (baseline, drifted):
        land(day, settings)
        ingest(day, settings)
    assert g.run_gate(baseline, settings)["decision"] == "pass"
    actions.promote(baseline, settings)
    gate = g.run_gate(drifted, settings)
    assert gate["decision"] == "fail" and gate["expectations"]["failed"] == []
    assert gate["tfdv"]["anomalies"] == []  # valid data: only drift blocks it
    assert all(r.startswith("drift on ") and r.endswith("(block)") for r in gate["reasons"])
    actions.quarantine(drifted, settings)

    with pytest.raises(actions.GateError, match="still fails the gate"):
        actions.readmit(drifted, settings)  # idempotent: the same verdict, back in quarantine
    assert lake.partitions(Zone.QUARANTINE) == [drifted]
    out = actions.readmit(
        drifted, settings, force=True, reason="new operating regime after overhaul"
    )
    assert out["ds"] == drifted.isoformat()
    assert lake.partitions(Zone.VALIDATED) == [baseline, drifted]
    assert lake.partitions(Zone.QUARANTINE) == [] and lake.exists(Zone.RAW, drifted)
    override = report.read_gate(lake, drifted)["override"]
    assert override["reason"] == "new operating regime after overhaul"
    assert override["overridden_decision"] == "fail" and override["by"]
    assert lake.read_meta(Zone.VALIDATED, drifted)["override"]["reason"] == override["reason"]


def test_a_fixed_quarantined_day_is_readmitted_by_rerunning_the_gate(gate_env, monkeypatch):
    settings = corrupt_day(monkeypatch, gate_env, "nulls")
    lake = Lake(settings.lake_root)
    land(DAY, settings)
    ingest(DAY, settings)
    g.run_gate(DAY, settings)
    actions.quarantine(DAY, settings)
    # The fix: fill the holes in the quarantined data (never deleted, so it can be repaired).
    df = lake.read_table(Zone.QUARANTINE, DAY).ffill().bfill()
    reason = lake.read_file(Zone.QUARANTINE, DAY, "reason.json")
    lake.write_table(Zone.QUARANTINE, DAY, df, files={"reason.json": reason})
    out = actions.readmit(DAY, settings)
    assert out["decision"] in ("pass", "warn")
    assert lake.partitions(Zone.VALIDATED) == [DAY] and lake.partitions(Zone.QUARANTINE) == []
    assert report.read_gate(lake, DAY)["override"] is None


def test_running_the_gate_never_changes_committed_files(gate_env, gx_copy):
    settings = gate_env()
    land(DAY, settings)
    ingest(DAY, settings)
    g.run_gate(DAY, settings)
    committed = REPO_ROOT / "gx"
    for path in committed.rglob("*"):
        if path.is_file() and "uncommitted" not in path.parts:
            assert (gx_copy / path.relative_to(committed)).read_bytes() == path.read_bytes(), path
    assert (gx_copy / "uncommitted" / "expectations").exists()  # run-time objects went here


def test_committed_schema_fits_the_spec():
    from anomalyops.settings import Settings
    from anomalyops.validation import schema

    settings = Settings()
    spec = load_spec(settings.feature_spec_path)
    sch = schema.load_schema(settings.validation.schema_path)
    assert schema.check_schema_matches_spec(sch, spec) == []
    feats = {f.name: f for f in sch.feature}
    for f in spec.features:
        assert (feats[f.name].float_domain.min, feats[f.name].float_domain.max) == (f.min, f.max)
        assert feats[f.name].presence.min_fraction == pytest.approx(1 - f.max_null_fraction)
    for column in [spec.timestamp.column, spec.entity.column, spec.label.column]:
        assert feats[column].presence.min_fraction == 0.0  # optional for TFX's ExampleValidator


def test_schema_infer_command_writes_a_schema_that_fits(tmp_path):
    from anomalyops.settings import Settings
    from anomalyops.validation import schema
    from anomalyops_cli.main import main

    out = tmp_path / "schema.pbtxt"
    assert main(["schema", "infer", "--days", "2", "--rows", "288", "--output", str(out)]) == 0
    spec = load_spec(Settings().feature_spec_path)
    assert schema.check_schema_matches_spec(schema.load_schema(out), spec) == []
    assert out.read_text().startswith("# Curated TFDV schema for feature spec")


def test_baseline_stats_recomputed_when_a_validated_day_has_no_report(gate_env):
    settings = gate_env()
    spec = load_spec(settings.feature_spec_path)
    from anomalyops.sources.simulator import SimulatorConfig, simulate_day

    lake = Lake(settings.lake_root)
    prev = DAY - dt.timedelta(days=1)
    lake.write_table(
        Zone.VALIDATED, prev, simulate_day(spec, prev, SimulatorConfig(rows_per_day=1440))
    )
    land(DAY, settings)
    ingest(DAY, settings)
    gate = g.run_gate(DAY, settings)
    assert gate["drift"]["baseline"] == prev.isoformat()
    assert {d["feature"] for d in gate["drift"]["scores"]} >= set(spec.feature_names)
    assert all(isinstance(d["value"], float) for d in gate["drift"]["scores"])
    assert isinstance(
        pd.read_json(lake.uri(report.report_path(lake, DAY, report.DRIFT_JSON)), typ="series"),
        pd.Series,
    )
