"""Lake durability: a readmit and a DAG re-run of the same day cannot interleave (issue #11)."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd

from anomalyops.lake import Lake, Zone
from anomalyops.validation import day_actions as actions
from anomalyops.validation import report

DAY = "2026-11-06"

# What a DAG re-run's ingest task does for the day, in its own process, waiting at most 0.3 s.
_RERUN_INGEST = """
import sys
import pandas as pd
from anomalyops.lake import Lake, Zone
from anomalyops.lake_lock import PartitionLocked
from anomalyops.settings import LakeLockSettings
lake = Lake(sys.argv[1], lock_settings=LakeLockSettings(timeout_s=0.3, poll_s=0.05))
try:
    lake.write_table(Zone.RAW, sys.argv[2], pd.DataFrame({"a": [9.0]}), meta={"by": "dag re-run"})
except PartitionLocked as exc:
    print("locked:", exc)
else:
    print("wrote")
"""


def _gate_record(decision: str) -> dict:
    return {
        "ds": DAY, "decision": decision, "outcome": "pending", "reasons": [],
        "spec": {"name": "s", "fingerprint": "abc"},
        "expectations": {"evaluated": 3, "success": True, "failed": []},
        "tfdv": {"anomalies": []}, "drift": {"baseline": None, "scores": []},
        "reports": {"gate": "x"}, "alerts": [], "override": None,
    }  # fmt: skip


def test_a_dag_rerun_waits_while_readmit_holds_the_day(settings_env, monkeypatch):
    settings = settings_env()
    lake = Lake(settings.lake_root)
    lake.write_table(
        Zone.QUARANTINE,
        DAY,
        pd.DataFrame({"a": [1.0, 2.0]}),
        files={"reason.json": json.dumps({"stage": "gate", "problems": []}).encode()},
    )
    attempts = []

    def fake_run_gate(day, settings_, spec=None):
        # Mid-readmit (raw/ rewritten, gate not yet decided): a re-run tries to write the day.
        out = subprocess.run(
            [sys.executable, "-c", _RERUN_INGEST, settings_.lake_root, DAY],
            capture_output=True,
            text=True,
            timeout=60,
        )
        attempts.append(out.stdout.strip() or out.stderr)
        gate = _gate_record("pass")
        report.write_report(lake, DAY, {report.GATE_FILE: report.dumps(gate)}, meta={})
        return gate

    monkeypatch.setattr(actions, "run_gate", fake_run_gate)
    out = actions.readmit(DAY, settings)
    assert out["decision"] == "pass"
    assert attempts and attempts[0].startswith("locked:"), attempts
    assert "'readmit 2026-11-06'" in attempts[0]
    # What readmit promoted is the quarantined data, not a re-run's write slipped in between.
    assert lake.read_table(Zone.VALIDATED, DAY)["a"].tolist() == [1.0, 2.0]
    assert lake.read_meta(Zone.RAW, DAY)["readmitted_from"] == "quarantine"
    # Once readmit is done, the re-run goes through.
    rerun = subprocess.run(
        [sys.executable, "-c", _RERUN_INGEST, settings.lake_root, DAY],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rerun.stdout.strip() == "wrote", rerun.stderr
