"""The gate's records in the lake: ``reports/ds=<day>/`` (gate.json, GX result, TFDV files)
and the ``reason.json`` of a quarantined day.

Layout of one day's report partition (written as one transaction, replaced on re-run)::

    reports/ds=<day>/gate.json                 the decision, machine-readable
    reports/ds=<day>/gx/validation_result.json GX's full result
    reports/ds=<day>/tfdv/stats.pb             DatasetFeatureStatisticsList (binary proto)
    reports/ds=<day>/tfdv/stats.html           statistics page (vs the baseline day)
    reports/ds=<day>/tfdv/anomalies.json|.pbtxt TFDV Anomalies proto
    reports/ds=<day>/tfdv/drift.json           drift scores vs thresholds
"""

from __future__ import annotations

import datetime as dt
import json

from anomalyops.lake import SUCCESS, Lake, PartitionNotFound, Zone, as_date
from anomalyops.validation.report_model import AlertRecord, GateReport

GATE_FILE = "gate.json"
REASON_FILE = "reason.json"
GX_RESULT = "gx/validation_result.json"
STATS_PB = "tfdv/stats.pb"
STATS_HTML = "tfdv/stats.html"
ANOMALIES_JSON = "tfdv/anomalies.json"
ANOMALIES_PBTXT = "tfdv/anomalies.pbtxt"
DRIFT_JSON = "tfdv/drift.json"


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def dumps(obj: object) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=False, default=str).encode()


def report_path(lake: Lake, ds: str | dt.date, name: str = "") -> str:
    base = lake.partition_path(Zone.REPORTS, ds)
    return f"{base}/{name}" if name else base


def write_report(lake: Lake, ds: str | dt.date, files: dict[str, bytes], *, meta: dict) -> str:
    """Atomically replace ``reports/ds=<day>/`` with ``files`` (names may contain one ``/``)."""
    with lake.transaction(Zone.REPORTS, ds, meta=meta) as tmp:
        for name, data in files.items():
            if "/" in name:
                lake.fs.makedirs(f"{tmp}/{name.rsplit('/', 1)[0]}", exist_ok=True)
            with lake.fs.open(f"{tmp}/{name}", "wb") as f:
                f.write(data)
    return report_path(lake, ds)


def read_report_files(lake: Lake, ds: str | dt.date) -> dict[str, bytes]:
    base = report_path(lake, ds)
    if not lake.exists(Zone.REPORTS, ds):
        raise PartitionNotFound(f"no gate report at {lake.uri(base)}")
    out = {}
    for path in lake.fs.find(base):
        name = path[len(base) + 1 :] if path.startswith(base) else path.rsplit("/", 1)[-1]
        if name != SUCCESS:
            with lake.fs.open(path, "rb") as f:
                out[name] = f.read()
    return out


def read_gate_report(lake: Lake, ds: str | dt.date) -> GateReport:
    """The day's gate.json as a :class:`GateReport`."""
    return GateReport.model_validate_json(_read_gate_bytes(lake, ds))


def read_gate(lake: Lake, ds: str | dt.date) -> dict:
    """The day's gate.json as plain JSON (for scripts); code in the package reads
    :func:`read_gate_report`."""
    return json.loads(_read_gate_bytes(lake, ds))


def _read_gate_bytes(lake: Lake, ds: str | dt.date) -> bytes:
    base = report_path(lake, ds)
    if not lake.exists(Zone.REPORTS, ds):
        raise PartitionNotFound(
            f"no gate report at {lake.uri(base)}: run the gate (task 'validate') for {as_date(ds)}"
        )
    with lake.fs.open(f"{base}/{GATE_FILE}", "rb") as f:
        return f.read()


def gate_file(gate: GateReport) -> bytes:
    """gate.json's bytes: the keys that were set, in the shape the gate always wrote."""
    return dumps(gate.to_json())


def update_gate(lake: Lake, ds: str | dt.date, **changes) -> GateReport:
    """Rewrite gate.json with ``changes`` merged in (``alerts`` entries are appended)."""
    files = read_report_files(lake, ds)
    gate = GateReport.model_validate_json(files[GATE_FILE])
    for key, value in changes.items():
        if key == "alerts":
            gate.alerts = [*gate.alerts, *(AlertRecord.model_validate(a) for a in value)]
        else:
            setattr(gate, key, value)
    record = gate.to_json()
    files[GATE_FILE] = dumps(record)
    write_report(
        lake,
        ds,
        files,
        meta={"decision": record.get("decision"), "outcome": record.get("outcome")},
    )
    return gate


def read_reason(lake: Lake, ds: str | dt.date) -> dict | None:
    """The quarantined day's reason.json, or None when the day is not in quarantine."""
    if not lake.exists(Zone.QUARANTINE, ds):
        return None
    try:
        return json.loads(lake.read_file(Zone.QUARANTINE, ds, REASON_FILE))
    except FileNotFoundError:
        return None
