"""Acting on the data-quality gate's record: promote, quarantine or re-admit a day.

Each holds the day's lake lock and is idempotent: re-running a day rewrites the same partitions
and records. The verdict itself comes from ``quality_gate.run_gate`` (``gate.json``).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging

from anomalyops.lake import Lake, PartitionNotFound, Zone, as_date
from anomalyops.settings import Settings
from anomalyops.validation import report as rpt
from anomalyops.validation.quality_gate import FAIL, GateError, run_gate
from anomalyops.validation.report_model import GateReport, Outcome

log = logging.getLogger(__name__)

__all__ = ["GateError", "promote", "quarantine", "readmit", "reason_document"]


def promote(ds: str | dt.date, settings: Settings, *, override: dict | None = None) -> dict:
    """Copy ``raw`` -> ``validated`` for a day whose gate passed (or was overridden).

    Holds the day's lake lock, so gate.json, raw/ and quarantine/ cannot change under it.
    """
    day = as_date(ds)
    with Lake(settings.lake_root).lock(day, purpose=f"promote {day}"):
        return _promote(day, settings, override=override)


def _promote(day: dt.date, settings: Settings, *, override: dict | None) -> dict:
    lake = Lake(settings.lake_root)
    gate = rpt.read_gate_report(lake, day)
    if gate.decision == FAIL and override is None:
        raise GateError(f"refusing to promote {day}: the gate failed ({'; '.join(gate.reasons)})")
    path = lake.copy(
        day,
        Zone.RAW,
        Zone.VALIDATED,
        meta={
            "gate": gate.decision.value,
            "spec": gate.spec.fingerprint if gate.spec else None,
            "override": override,
        },
    )
    if lake.exists(Zone.QUARANTINE, day):
        lake.remove(Zone.QUARANTINE, day, reason="the day passed the gate; raw/ keeps its data")
    changes = {
        "outcome": Outcome.PROMOTED,
        "promoted_at": rpt.now(),
        "validated_path": lake.uri(path),
    }
    if override is not None:
        changes["override"] = override
    rpt.update_gate(lake, day, **changes)
    log.info("promoted %s to %s", day, lake.uri(path))
    return {"ds": day.isoformat(), "decision": gate.decision.value, "path": lake.uri(path)}


def reason_document(gate: GateReport) -> dict:
    """The machine-readable reason a day is in quarantine (``reason.json``)."""
    return {
        "ds": gate.ds,
        "stage": "gate",
        "decision": gate.decision.value,
        "problems": gate.reasons,
        "failed_expectations": gate.expectations.failed,
        "tfdv_anomalies": gate.tfdv.anomalies,
        "drift": gate.drift.to_json(),
        "reports": gate.reports.to_json(),
        "quarantined_at": rpt.now(),
        "readmit": f"anomalyops readmit {gate.ds} [--force --reason '...']",
    }


def quarantine(ds: str | dt.date, settings: Settings) -> dict:
    """Move ``raw`` -> ``quarantine`` with reason.json; withdraw any earlier promotion.

    Holds the day's lake lock, like :func:`promote`.
    """
    day = as_date(ds)
    with Lake(settings.lake_root).lock(day, purpose=f"quarantine {day}"):
        return _quarantine(day, settings)


def _quarantine(day: dt.date, settings: Settings) -> dict:
    lake = Lake(settings.lake_root)
    gate = rpt.read_gate_report(lake, day)
    if gate.decision != FAIL:
        raise GateError(
            f"refusing to quarantine {day}: its gate decision is {gate.decision.value!r}"
        )
    reason = reason_document(gate)
    if lake.exists(Zone.RAW, day):
        lake.move(
            day,
            Zone.RAW,
            Zone.QUARANTINE,
            files={rpt.REASON_FILE: rpt.dumps(reason)},
            meta={"reason": "gate", "problems": len(reason["problems"])},
        )
    elif not lake.exists(Zone.QUARANTINE, day):
        raise PartitionNotFound(f"{day} is neither in raw/ nor in quarantine/")
    if lake.exists(Zone.VALIDATED, day):
        # The raw data is kept (now in quarantine/); only the copy training would read goes.
        lake.remove(Zone.VALIDATED, day, reason="a re-run of the gate failed this day")
    path = lake.partition_path(Zone.QUARANTINE, day)
    gate = rpt.update_gate(lake, day, outcome=Outcome.QUARANTINED, quarantine_path=lake.uri(path))
    log.error("quarantined %s: %s", day, "; ".join(gate.reasons))
    return gate.to_json()


def readmit(
    ds: str | dt.date, settings: Settings, *, force: bool = False, reason: str | None = None
) -> dict:
    """Re-run the gate on a quarantined day; promote it if it passes (or if forced).

    A forced re-admission needs a ``reason``; it is recorded in gate.json (``override``)
    and in the validated partition's marker, with who forced it and what the gate said.
    The day's lake lock is held throughout, so a DAG re-run of the same day (ingest, gate,
    promote or quarantine) waits for it instead of interleaving with it.
    """
    day = as_date(ds)
    with Lake(settings.lake_root).lock(day, purpose=f"readmit {day}"):
        return _readmit(day, settings, force=force, reason=reason)


def _readmit(day: dt.date, settings: Settings, *, force: bool, reason: str | None) -> dict:
    lake = Lake(settings.lake_root)
    found = rpt.read_reason(lake, day)
    if found is None:
        raise GateError(f"{day} is not in quarantine/ (nothing to re-admit)")
    if found.get("stage") == "ingest":
        raise GateError(
            f"{day} was rejected at ingestion ({'; '.join(found.get('problems', []))}). Fix the "
            f"files in {lake.uri(lake.landing_path(day))}/ (originals are kept in "
            f"{lake.uri(lake.partition_path(Zone.QUARANTINE, day))}/), then clear the 'ingest' "
            "task of that day's run (or re-run the DAG for the day)"
        )
    if force and not (reason and reason.strip()):
        raise GateError("--force needs --reason: the override is recorded with the day")
    df = lake.read_table(Zone.QUARANTINE, day)
    meta = lake.read_meta(Zone.QUARANTINE, day)
    lake.write_table(
        Zone.RAW,
        day,
        df,
        meta={
            "readmitted_from": "quarantine",
            "spec": meta.get("spec"),
            "source_files": meta.get("source_files"),
        },
    )
    gate = GateReport.model_validate(run_gate(day, settings))
    if gate.decision != FAIL:
        return promote(day, settings)
    if not force:
        quarantine(day, settings)
        raise GateError(
            f"{day} still fails the gate and stays in quarantine: {'; '.join(gate.reasons)}"
        )
    override = {
        "by": getpass.getuser(),
        "at": rpt.now(),
        "reason": reason.strip(),
        "overridden_decision": gate.decision.value,
        "overridden_reasons": gate.reasons,
    }
    log.warning("forcing promotion of %s: %s", day, json.dumps(override))
    return promote(day, settings, override=override)
