"""What the gate writes now has the shape the previous version wrote (tests/fixtures/reports)."""

from __future__ import annotations

import datetime as dt
import json

from anomalyops.ingest import ingest, land
from anomalyops.lake import Lake, Zone
from anomalyops.validation import day_actions as actions
from anomalyops.validation import quality_gate as g
from anomalyops.validation import report
from tests.helpers.common import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "reports"


def keys(obj):
    """The nested key structure (list items merged), leaves as their JSON type."""
    if isinstance(obj, dict):
        return {k: keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        merged: dict = {}
        for item in obj:
            merged.update(keys(item) if isinstance(item, dict) else {"[]": keys(item)})
        return [merged] if merged else []
    return "null" if obj is None else type(obj).__name__


def old(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_gate_json_keeps_the_previous_shape(gate_env, monkeypatch):
    first, drifted = dt.date(2026, 11, 6), dt.date(2026, 11, 7)
    monkeypatch.setenv("ANOMALYOPS_SIMULATOR__SCENARIO", "sudden")
    monkeypatch.setenv("ANOMALYOPS_SIMULATOR__DRIFT_START", drifted.isoformat())
    gate_env.cache_clear()
    settings = gate_env()
    lake = Lake(settings.lake_root)
    for day in (first, drifted):
        land(day, settings)
        ingest(day, settings)

    returned = g.run_gate(first, settings)
    written = report.read_gate(lake, first)
    assert returned == written
    assert keys(written) == keys(old("gate_pass_first_day_pending.json"))
    assert list(written) == list(old("gate_pass_first_day_pending.json"))
    drift_json = json.loads(lake.read_file(Zone.REPORTS, first, report.DRIFT_JSON))
    assert list(drift_json) == ["ds", *old("gate_pass_first_day_pending.json")["drift"]]

    actions.promote(first, settings)
    assert g.run_gate(drifted, settings)["decision"] == "warn"
    actions.promote(drifted, settings)
    delivery = old("gate_warn_promoted_alerted.json")["alerts"][0]
    report.update_gate(lake, drifted, alerts=[delivery])
    written = report.read_gate(lake, drifted)
    previous = old("gate_warn_promoted_alerted.json")
    assert list(written) == list(previous)
    for key in ("spec", "expectations", "tfdv", "reports", "timings", "alerts"):
        assert keys(written[key]) == keys(previous[key]), key
    assert list(written["drift"]) == list(previous["drift"])
    assert set(keys(written["drift"]["scores"])[0]) == set(keys(previous["drift"]["scores"])[0])
