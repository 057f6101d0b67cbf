"""The alert emails' contents: a gate verdict or a task failure as plain text and HTML.

The bodies are Jinja templates shipped with the package (``anomalyops/templates/alerts/``):
``<name>.txt.j2`` and ``<name>.html.j2`` per email, their shared sentences in ``_words.j2``.
This module computes what they show (counts, formatted numbers, table rows) and builds the
MIME message. Building a message needs no Airflow; sending it and the DAGs' failure callback
live in the Airflow layer (``anomalyops_airflow.alerting``).
"""

from __future__ import annotations

import html
import logging
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid
from functools import cache
from typing import TYPE_CHECKING

from jinja2 import Environment, PackageLoader, StrictUndefined, pass_eval_context, select_autoescape
from jinja2.nodes import EvalContext
from markupsafe import Markup

from anomalyops.settings import Settings
from anomalyops.validation.report_model import DriftBlock, GateReport, Verdict

if TYPE_CHECKING:  # the lake behind them imports pandas and pyarrow; DAG files parse this module
    from anomalyops.served_traffic import TrafficDay
    from anomalyops.sources.arrival import Arrival

log = logging.getLogger(__name__)

SUBJECT_PREFIX = "[anomalyops]"


# -- rendering -------------------------------------------------------------------------------
@cache
def _environment() -> Environment:
    """Templates from the package; HTML ones (``*.html.j2``) autoescape every value."""
    env = Environment(
        loader=PackageLoader("anomalyops", "templates/alerts"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters["href"] = _href
    # The shared sentences (_words.j2) are plain text; a macro called from an HTML template
    # returns them marked safe, so the HTML templates pass them through ``text`` to be escaped.
    env.filters["text"] = str
    return env


@pass_eval_context
def _finalize(eval_ctx: EvalContext, value: object) -> object:
    """Every ``{{ value }}``: None as empty; escaped with ``html.escape`` where autoescaping.

    Autoescaping would escape the string anyway (with markupsafe's entities); escaping it here
    keeps the entities the emails always had (``&#x27;``, ``&quot;``).
    """
    if isinstance(value, Markup):
        return value
    text = "" if value is None else str(value)
    return Markup(html.escape(text)) if eval_ctx.autoescape else text


def _href(value: object) -> str | None:
    """The link target of a URL or an absolute path, else None (shown as plain text)."""
    if isinstance(value, str) and value.startswith(("http://", "https://", "file://", "/")):
        return value if "://" in value else f"file://{value}"
    return None


def _message(name: str, subject: str, settings: Settings, **context: object) -> MIMEMultipart:
    env = _environment()
    text = env.get_template(f"{name}.txt.j2").render(subject=subject, **context)
    page = env.get_template(f"{name}.html.j2").render(subject=subject, **context)
    msg = MIMEMultipart("alternative")
    msg["Subject"] = subject
    msg["From"] = settings.smtp.mail_from
    msg["To"] = ", ".join(settings.alert_emails)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="anomalyops")
    msg.attach(MIMEText(text.strip() + "\n", "plain", "utf-8"))
    msg.attach(MIMEText(page, "html", "utf-8"))
    return msg


def _run_fields(
    dag_id: str | None, run_id: str | None, logical_date: object
) -> list[tuple[str, object]]:
    return [("DAG", dag_id or "-"), ("Run", run_id or "-"), ("Logical date", logical_date or "-")]


def _reference_text(block: DriftBlock) -> str:
    refs = block.reference_days
    if len(refs) > 1:
        return f"the reference days {refs[0]} .. {refs[-1]}"
    return refs[0] if refs else str(block.baseline)


def render_gate_email(
    gate: GateReport | dict,
    settings: Settings,
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
    logical_date: object = None,
) -> MIMEMultipart:
    """The gate's alert: a quarantined day (decision ``fail``) or a drift warning (``warn``).

    ``gate``: the day's gate.json, as a :class:`GateReport` or as its JSON content.
    """
    gate = GateReport.model_validate(gate)
    ds, failed = gate.ds, gate.expectations.failed
    anomalies = gate.tfdv.anomalies
    block = gate.drift
    drift = block.scores
    # The lead sentences and the headings are in templates/alerts/gate.*.j2 and _words.j2.
    # A feature has several tests (marginal, residual): count features, not tests.
    drifted = sorted({d["feature"] for d in drift if d.get("drifted")})
    if gate.decision == Verdict.FAIL:
        subject = (
            f"{SUBJECT_PREFIX} ds={ds} QUARANTINED: {len(failed)} failed expectation(s), "
            f"{len(anomalies)} TFDV anomaly(ies), {len(drifted)} drifted feature(s)"
        )
    else:
        subject = (
            f"{SUBJECT_PREFIX} ds={ds} drift warning: {len(drifted)} feature(s) drifted (promoted)"
        )
    if not block.baseline:
        drift_view: dict = {"kind": "none", "note": block.note or "no baseline day"}
    elif any("p_value" in d for d in drift):
        drift_view = {
            "kind": "calibrated",
            "tests": len(drift),
            "alpha": block.alpha,
            "restart": block.restart,
            "header": [
                *("feature", "test", "statistic", "critical", "p (corrected)", "drifted"),
                "policy",
            ],
            "rows": [
                [
                    d["feature"],
                    d["comparator"],
                    _num(d["value"]),
                    _num(d.get("threshold")),
                    f"{d['p_value']:.3g}",
                    ("YES, restart" if d.get("restart") else "YES") if d["drifted"] else "no",
                    d.get("policy", ""),
                ]
                for d in drift
            ],
        }
    else:
        drift_view = {
            "kind": "scores",
            "header": ["feature", "comparator", "score", "threshold", "drifted", "policy"],
            "rows": [
                [
                    d["feature"],
                    d["comparator"],
                    _num(d["value"]),
                    f"{d['threshold']:.4f}",
                    "YES" if d["drifted"] else "no",
                    d.get("policy", ""),
                ]
                for d in drift
            ],
        }
    drift_view["title"] = f"Drift vs {_reference_text(block)}" if block.baseline else "Drift"
    reports = gate.reports
    return _message(
        "gate",
        subject,
        settings,
        decision=gate.decision.value,
        ds=ds,
        reference=_reference_text(block),
        summary=[
            *_run_fields(dag_id, run_id, logical_date),
            ("Decision", gate.decision.value),
            ("Outcome", gate.outcome.value),
            ("Rows", gate.rows),
            ("Spec", f"{gate.spec.name} ({gate.spec.fingerprint})" if gate.spec else "-"),
        ],
        failed=[[f["expectation"], _col(f.get("column")), f.get("observed", "")] for f in failed],
        anomalies=[[a["feature"], a["short_description"]] for a in anomalies],
        drift=drift_view,
        reports=[
            ("Data Docs (GX)", reports.data_docs or "-"),
            ("TFDV statistics", reports.statistics_html or "-"),
            ("TFDV anomalies", reports.anomalies or "-"),
            ("Gate decision", reports.gate or "-"),
            *([("Quarantined data", gate.quarantine_path)] if gate.quarantine_path else []),
        ],
    )


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _col(column: object) -> str:
    if isinstance(column, list):
        return ", ".join(map(str, column))
    return "" if column is None else str(column)


def render_failure_email(
    settings: Settings,
    *,
    dag_id: str,
    task_id: str,
    run_id: str | None,
    logical_date: object,
    try_number: int | None,
    error: object,
    log_url: str | None,
    log_path: str | None,
    quarantine: dict | None = None,
) -> MIMEMultipart:
    """A task failed: what, where its log is, and (for rejected input) the problems found."""
    subject = f"{SUBJECT_PREFIX} task failed: {dag_id}.{task_id} (logical date {logical_date})"
    if quarantine:
        quarantine = {
            "stage": quarantine.get("stage", "?"),
            "problems": [[p] for p in quarantine.get("problems") or []],
            "location": quarantine.get("location"),
        }
    return _message(
        "failure",
        subject,
        settings,
        dag_id=dag_id,
        task_id=task_id,
        summary=[
            *_run_fields(dag_id, run_id, logical_date),
            ("Task", task_id),
            ("Try", try_number if try_number is not None else "-"),
            ("Log (web UI)", log_url or "-"),
            ("Log file", log_path or "-"),
        ],
        error=str(error) if error else "(no exception recorded)",
        quarantine=quarantine or None,
    )


def render_traffic_email(
    day: TrafficDay,
    settings: Settings,
    *,
    record_uri: str | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
    logical_date: object = None,
) -> MIMEMultipart:
    """The served model alarmed on far more of a day's uploads than it was calibrated for."""
    rate = f"{100 * day.alarm_rate:.1f} %" if day.alarm_rate is not None else "-"
    subject = (
        f"{SUBJECT_PREFIX} served traffic drifted on {day.ds}: model {day.version} flagged "
        f"{rate} of {day.rows:,} rows"
    )
    low, high = day.alarm_rate_interval or (None, None)
    return _message(
        "traffic",
        subject,
        settings,
        summary_line=day.summary,
        summary=[
            *_run_fields(dag_id, run_id, logical_date),
            ("Model version", day.version),
            ("Rows scored that day", f"{day.rows:,}"),
            ("Rows flagged", f"{day.flagged:,}"),
            ("Alarm rate (99 % interval)", f"{rate} ({_pct(low)} - {_pct(high)})"),
            ("Calibrated for", _pct(day.calibrated_alarm_rate)),
            ("Band up to", _pct(day.max_alarm_rate)),
            ("Counted since", day.baseline or "the API's counters started"),
            ("Record", record_uri or "-"),
        ],
    )


def render_late_email(
    ds: str,
    arrival: Arrival,
    deadline: object,
    settings: Settings,
    *,
    folder: str,
    log_url: str | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
    logical_date: object = None,
) -> MIMEMultipart:
    """A day's landing files had not (all) arrived by its deadline."""
    found = ", ".join(arrival.files[:10]) + (" ..." if len(arrival.files) > 10 else "")
    quiet = settings.landing.quiet_period_s
    return _message(
        "landing_late",
        f"{SUBJECT_PREFIX} data late: {ds} had not arrived by {deadline}",
        settings,
        ds=ds,
        deadline=deadline,
        marker=settings.landing.ready_marker,
        quiet=_duration(quiet) if quiet is not None else None,
        summary=[
            *_run_fields(dag_id, run_id, logical_date),
            ("Folder", folder),
            ("State at the deadline", arrival.detail),
            ("Files found", found or "none"),
            ("Not read", ", ".join(arrival.ignored[:10]) or "-"),
            ("Log (web UI)", log_url or "-"),
        ],
    )


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"
