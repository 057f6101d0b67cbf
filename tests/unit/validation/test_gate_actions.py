"""promote / quarantine / readmit act on gate.json; no data is ever lost on the way."""

import json

import pandas as pd
import pytest

from anomalyops.lake import Lake, Zone
from anomalyops.validation import day_actions as actions
from anomalyops.validation import quality_gate as g
from anomalyops.validation import report

DAY = "2026-11-06"


def recorded(decision: str, reasons=()) -> dict:
    return {
        "ds": DAY,
        "decision": decision,
        "outcome": "pending",
        "reasons": list(reasons),
        "spec": {"name": "s", "fingerprint": "abc"},
        "expectations": {"evaluated": 3, "success": decision != "fail", "failed": []},
        "tfdv": {"anomalies": []},
        "drift": {"baseline": None, "note": "first day", "scores": []},
        "reports": {"gate": "x"},
        "alerts": [],
        "override": None,
    }


@pytest.fixture
def lake_with_day(settings_env):
    settings = settings_env()
    lake = Lake(settings.lake_root)
    lake.write_table(Zone.RAW, DAY, pd.DataFrame({"a": [1.0, 2.0]}))

    def record(decision, reasons=()):
        gate = recorded(decision, reasons)
        report.write_report(lake, DAY, {report.GATE_FILE: report.dumps(gate)}, meta={})
        return gate

    return settings, lake, record


def test_promote_copies_and_keeps_raw(lake_with_day):
    settings, lake, record = lake_with_day
    record("warn", ["drift on a"])
    out = actions.promote(DAY, settings)
    assert (
        out["decision"] == "warn"
        and lake.exists(Zone.RAW, DAY)
        and lake.exists(Zone.VALIDATED, DAY)
    )
    assert lake.read_meta(Zone.VALIDATED, DAY)["gate"] == "warn"
    gate = report.read_gate(lake, DAY)
    assert gate["outcome"] == "promoted" and gate["validated_path"].endswith(f"validated/ds={DAY}")


def test_failed_day_is_never_promoted_and_passing_day_never_quarantined(lake_with_day):
    settings, lake, record = lake_with_day
    record("fail", ["nulls"])
    with pytest.raises(actions.GateError, match="refusing to promote"):
        actions.promote(DAY, settings)
    record("pass")
    with pytest.raises(actions.GateError, match="refusing to quarantine"):
        actions.quarantine(DAY, settings)
    assert lake.exists(Zone.RAW, DAY) and not lake.exists(Zone.VALIDATED, DAY)


def test_quarantine_moves_with_reason_withdraws_promotion_and_is_idempotent(lake_with_day):
    settings, lake, record = lake_with_day
    record("pass")
    actions.promote(DAY, settings)
    record("fail", ["expectation x on a: 2 of 2 values unexpected"])  # a re-run now fails
    out = actions.quarantine(DAY, settings)
    assert out["outcome"] == "quarantined"
    assert not lake.exists(Zone.RAW, DAY) and not lake.exists(Zone.VALIDATED, DAY)
    assert lake.read_table(Zone.QUARANTINE, DAY).equals(pd.DataFrame({"a": [1.0, 2.0]}))
    reason = json.loads(lake.read_file(Zone.QUARANTINE, DAY, "reason.json"))
    assert reason["stage"] == "gate" and reason["problems"] == [
        "expectation x on a: 2 of 2 values unexpected"
    ]
    assert reason["readmit"].startswith(f"anomalyops readmit {DAY}")
    actions.quarantine(DAY, settings)  # again: nothing to move, still quarantined
    assert lake.exists(Zone.QUARANTINE, DAY)
    assert report.read_gate(lake, DAY)["outcome"] == "quarantined"


def test_update_gate_appends_alert_records(lake_with_day):
    _, lake, record = lake_with_day
    record("fail")
    report.update_gate(lake, DAY, alerts=[{"kind": "quarantine", "sent": False}])
    report.update_gate(lake, DAY, alerts=[{"kind": "quarantine", "sent": True}])
    assert [a["sent"] for a in report.read_gate(lake, DAY)["alerts"]] == [False, True]


def test_readmit_refuses_what_it_cannot_do(lake_with_day):
    settings, lake, _ = lake_with_day
    with pytest.raises(actions.GateError, match="not in quarantine"):
        actions.readmit(DAY, settings)
    reason = {"stage": "ingest", "problems": ["landing/x.csv: missing column 'a'"]}
    lake.write_files(Zone.QUARANTINE, DAY, {"reason.json": json.dumps(reason).encode()})
    with pytest.raises(
        actions.GateError, match=r"rejected at ingestion.*missing column 'a'.*clear the 'ingest'"
    ):
        actions.readmit(DAY, settings)
    lake.write_files(Zone.QUARANTINE, DAY, {"reason.json": b'{"stage": "gate"}'})
    with pytest.raises(actions.GateError, match="--force needs --reason"):
        actions.readmit(DAY, settings, force=True, reason=" ")


def test_baseline_is_the_newest_validated_day_before(lake_with_day):
    import datetime as dt

    _, lake, _ = lake_with_day

    for day in ("2026-11-01", "2026-11-03", "2026-11-08"):
        lake.write_table(Zone.VALIDATED, day, pd.DataFrame({"a": [1.0]}))
    assert g.baseline_day(lake, dt.date(2026, 11, 6)) == dt.date(2026, 11, 3)
    assert g.baseline_day(lake, dt.date(2026, 11, 1)) is None
