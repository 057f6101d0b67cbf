"""gate.json as a typed model: the previous version's files read, and write back unchanged."""

from __future__ import annotations

import json

import pytest

from anomalyops import alerts
from anomalyops.lake import Lake
from anomalyops.settings import Settings
from anomalyops.validation import report
from anomalyops.validation.report_model import (
    AlertRecord,
    GateReport,
    Outcome,
    Override,
    Verdict,
)
from tests.helpers.common import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "reports"
"""gate.json files written by the gate before it had a model (commit 38f09ba)."""
GATE_FILES = sorted(FIXTURES.glob("gate_*.json"))


def test_there_are_fixtures():
    assert len(GATE_FILES) >= 4


@pytest.mark.parametrize("path", GATE_FILES, ids=lambda p: p.stem)
def test_a_previous_gate_json_reads_and_writes_back_byte_for_byte(path):
    text = path.read_text()
    gate = GateReport.model_validate_json(text)
    assert isinstance(gate.decision, Verdict) and isinstance(gate.outcome, Outcome)
    assert gate.model_extra == {}  # every key the gate wrote has a field
    assert json.dumps(gate.to_json(), indent=2) == text
    assert report.gate_file(gate).decode() == text


def test_previous_gate_json_fields_are_typed():
    first = GateReport.model_validate_json(
        (FIXTURES / "gate_pass_first_day_pending.json").read_text()
    )
    assert (first.decision, first.outcome) == (Verdict.PASS, Outcome.PENDING)
    assert first.drift.baseline is None and first.drift.note and first.drift.scores == []
    warned = GateReport.model_validate_json(
        (FIXTURES / "gate_warn_promoted_alerted.json").read_text()
    )
    assert warned.decision == "warn" and warned.outcome == Outcome.PROMOTED
    assert warned.validated_path and any(d["drifted"] for d in warned.drift.scores)
    assert [type(a) for a in warned.alerts] == [AlertRecord] and warned.alerts[0].sent is True
    forced = GateReport.model_validate_json(
        (FIXTURES / "gate_fail_readmitted_forced.json").read_text()
    )
    assert isinstance(forced.override, Override)
    assert forced.override.overridden_decision == Verdict.FAIL and forced.override.reason
    quarantined = GateReport.model_validate_json(
        (FIXTURES / "gate_fail_quarantined.json").read_text()
    )
    assert quarantined.quarantine_path and quarantined.tfdv.schema_path
    assert quarantined.expectations.failed and quarantined.reports.anomalies


def test_the_verdict_is_the_same_string_in_json():
    assert [v.value for v in Verdict] == ["pass", "warn", "fail"]
    assert (
        Verdict.FAIL == "fail" and f"{Verdict.WARN}" == "warn" and str(Outcome.PENDING) == "pending"
    )
    assert json.dumps({"decision": Verdict.FAIL}) == '{"decision": "fail"}'


def test_an_older_minimal_report_keeps_its_keys_and_unknown_ones(settings_env):
    lake = Lake(settings_env().lake_root)
    old = {
        "ds": "2026-11-06",
        "decision": "fail",
        "reasons": ["nulls"],
        "expectations": {"failed": []},
        "tfdv": {"anomalies": []},
        "drift": {"baseline": None, "scores": []},
        "from_the_future": {"x": 1},
    }
    report.write_report(lake, "2026-11-06", {report.GATE_FILE: report.dumps(old)}, meta={})
    gate = report.read_gate_report(lake, "2026-11-06")
    assert gate.outcome == Outcome.PENDING and gate.alerts == [] and gate.spec is None
    report.update_gate(lake, "2026-11-06", outcome=Outcome.QUARANTINED, alerts=[{"kind": "q"}])
    assert report.read_gate(lake, "2026-11-06") == {
        **old,
        "outcome": "quarantined",
        "alerts": [{"kind": "q"}],
    }


def test_the_email_renders_from_the_model_as_from_its_json():
    gate = GateReport.model_validate_json((FIXTURES / "gate_fail_quarantined.json").read_text())
    from_model = alerts.render_gate_email(gate, Settings())
    from_json = alerts.render_gate_email(gate.to_json(), Settings())
    assert from_model["Subject"] == from_json["Subject"] and "QUARANTINED" in from_model["Subject"]
    texts = [m.get_payload()[0].get_payload(decode=True) for m in (from_model, from_json)]
    assert texts[0] == texts[1]
