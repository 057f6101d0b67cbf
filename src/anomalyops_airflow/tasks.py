"""Airflow task callables: thin adapters from an Airflow context to the logic modules.

DAG files reference these; each reads the logical date Airflow passes (never ``now()``),
builds settings from the environment at run time, and returns a small JSON-able summary for
XCom. Heavy imports happen inside the functions so that parsing a DAG stays cheap.
"""

from __future__ import annotations

from anomalyops.settings import get_settings


def land(ds: str) -> list[str]:
    from anomalyops.ingest import land as _land

    return _land(ds, get_settings())


def ingest(ds: str) -> dict:
    from anomalyops.ingest import ingest_as_dict
    from anomalyops.sources.landing import IngestError
    from anomalyops_airflow.compat import AirflowFailException

    try:
        return ingest_as_dict(ds, get_settings())
    except IngestError as exc:
        # Unreadable input does not heal by retrying: fail now (the failure callback alerts).
        raise AirflowFailException(f"ingest rejected {ds}: {exc}") from exc


# -- the validation gate (docs/validation.md) ---------------------------------------------------
def validate(ds: str) -> dict:
    """Run GX + TFDV on raw/ds=<ds>; record reports/ds=<ds>/gate.json (moves no data)."""
    from anomalyops.validation.quality_gate import run_gate
    from anomalyops.validation.report_model import GateReport
    from anomalyops_airflow import metrics

    gate = GateReport.model_validate(run_gate(ds, get_settings()))
    metrics.gate_checked(gate)
    return {"ds": ds, "decision": gate.decision.value, "reasons": gate.reasons[:20]}


def branch_on_verdict(ds: str) -> str:
    """Branch: the id of the task that acts on the recorded decision."""
    from anomalyops.lake import Lake
    from anomalyops.validation.report import read_gate_report
    from anomalyops.validation.report_model import Verdict

    gate = read_gate_report(Lake(get_settings().lake_root), ds)
    return "quarantine" if gate.decision == Verdict.FAIL else "promote"


def promote(ds: str, outlet_events=None) -> dict:
    """Copy raw -> validated; the task's Dataset outlet then tells training about the day."""
    from anomalyops.validation.day_actions import promote as _promote
    from anomalyops_airflow import metrics
    from anomalyops_airflow.datasets import VALIDATED

    result = _promote(ds, get_settings())
    metrics.day_promoted()
    if outlet_events is not None:
        outlet_events[VALIDATED].extra = {"ds": ds, "path": result["path"]}
    return result


def quarantine(ds: str, **context) -> dict:
    """Move raw -> quarantine, email the alert, record its delivery, then fail the run."""
    from anomalyops import alerts
    from anomalyops.lake import Lake
    from anomalyops.validation import report
    from anomalyops.validation.day_actions import quarantine as _quarantine
    from anomalyops.validation.report_model import GateReport
    from anomalyops_airflow import alerting
    from anomalyops_airflow.compat import AirflowFailException

    settings = get_settings()
    gate = GateReport.model_validate(_quarantine(ds, settings))
    delivery = alerting.send(
        alerts.render_gate_email(gate, settings, **alerting.run_info(context)), settings
    )
    report.update_gate(Lake(settings.lake_root), ds, alerts=[{"kind": "quarantine", **delivery}])
    sent = "alert sent" if delivery["sent"] else f"ALERT NOT SENT ({delivery['error']})"
    exc = AirflowFailException(f"{ds} quarantined ({sent}): " + "; ".join(gate.reasons[:10]))
    setattr(exc, alerting.ALERTED_ATTR, True)
    raise exc


def notify_drift(ds: str, **context) -> dict:
    """Email a drift warning for a promoted day; fail visibly if the email cannot be sent."""
    from anomalyops import alerts
    from anomalyops.lake import Lake
    from anomalyops.validation import report
    from anomalyops.validation.report_model import Verdict
    from anomalyops_airflow import alerting
    from anomalyops_airflow.compat import AirflowFailException, AirflowSkipException

    settings = get_settings()
    lake = Lake(settings.lake_root)
    gate = report.read_gate_report(lake, ds)
    if gate.decision != Verdict.WARN:
        raise AirflowSkipException(f"no drift to report for {ds} (decision {gate.decision})")
    delivery = alerting.send(
        alerts.render_gate_email(gate, settings, **alerting.run_info(context)), settings
    )
    report.update_gate(lake, ds, alerts=[{"kind": "drift", **delivery}])
    if not delivery["sent"]:
        exc = AirflowFailException(
            f"drift warning for {ds} could not be emailed: {delivery['error']} (the day was "
            "promoted; see gate.json)"
        )
        setattr(exc, alerting.ALERTED_ATTR, True)  # the callback would fail the same way
        raise exc
    return {"ds": ds, "sent_to": delivery["to"]}


def check_served_traffic(ds: str, **context) -> dict:
    """Judge what the served model flagged of the day's uploads; email when above its band."""
    from anomalyops_airflow import alerting, traffic_check
    from anomalyops_airflow.compat import AirflowFailException, AirflowSkipException

    settings = get_settings()
    if not settings.api_url:
        raise AirflowSkipException("no scoring API to watch (ANOMALYOPS_API_URL is not set)")
    key = settings.api_admin_key.get_secret_value() if settings.api_admin_key else None
    try:
        counters = traffic_check.fetch_counters(
            settings.api_url, key, settings.monitoring.timeout_s
        )
    except traffic_check.NoModelServed as exc:
        raise AirflowSkipException(f"no model served yet, nothing to judge ({exc})") from exc
    result = traffic_check.check(ds, settings, counters, **alerting.run_info(context))
    if result.delivery is not None and not result.delivery["sent"]:
        exc = AirflowFailException(
            f"served traffic on {ds} is above its band but the alert could not be emailed: "
            f"{result.delivery['error']} (recorded in {result.record_uri})"
        )
        setattr(exc, alerting.ALERTED_ATTR, True)  # the callback would fail the same way
        raise exc
    day = result.day
    return {
        "ds": ds,
        "version": day.version,
        "status": day.status.value,
        "rows": day.rows,
        "alarm_rate": day.alarm_rate,
        "record": result.record_uri,
    }


def check_compiled_pipeline() -> dict:
    """Fail the training run early when the compiled TFX pipeline is missing or stale."""
    from anomalyops_airflow import ir

    status = ir.project_status(get_settings())
    if not status.fresh:
        raise ir.CompiledPipelineError(status.message)
    return {"fingerprint": status.actual}


def run_tfx_node(node_id: str, ir_path: str, run_id: str) -> dict:
    """Run one TFX node of the compiled pipeline; the Airflow run id is the TFX run id."""
    from anomalyops_airflow import metrics
    from anomalyops_airflow.compat import AirflowSkipException
    from anomalyops_airflow.launcher import run_node
    from anomalyops_tfx.pipeline import metadata_connection_config

    settings = get_settings()
    result = run_node(
        ir_path,
        node_id,
        run_id,
        # From settings at run time, so the server password need not be in the compiled IR.
        connection_config=metadata_connection_config(settings),
        skip_beam_sdist=settings.orchestration.skip_beam_sdist,
    )
    if result.state == "skipped":
        # TFX resolved no inputs to run on (a false condition upstream, e.g. a gate said no).
        raise AirflowSkipException(f"TFX skipped node {node_id!r} in run {run_id!r}")
    if result.state == "complete":  # a cached node reports an earlier run's outputs
        metrics.node_ran(node_id, result.outputs)
    return result.as_dict()


def register_window_spans() -> list[str]:
    """Register the training window's validated days that no run has ingested yet."""
    from anomalyops_airflow.spans import register_missing_spans

    return register_missing_spans(get_settings())
