"""The alert emails' contents: a gate verdict or a task failure as plain text and HTML.

Building a message needs no Airflow; sending it and the DAGs' failure callback live in the
Airflow layer (``anomalyops_airflow.alerting``).
"""

from __future__ import annotations

import html
import logging
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid

from anomalyops.served_traffic import TrafficDay
from anomalyops.settings import Settings
from anomalyops.validation.report_model import DriftBlock, GateReport, Verdict

log = logging.getLogger(__name__)

SUBJECT_PREFIX = "[anomalyops]"


# -- building messages -----------------------------------------------------------------------
class _Doc:
    """A message body built once, rendered as plain text and as HTML."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.html: list[str] = []

    def heading(self, title: str) -> None:
        self.text += ["", title, "-" * len(title)]
        self.html.append(f"<h3>{html.escape(title)}</h3>")

    def para(self, line: str) -> None:
        self.text.append(line)
        self.html.append(f"<p>{html.escape(line)}</p>")

    def fields(self, rows: list[tuple[str, object]]) -> None:
        width = max(len(k) for k, _ in rows)
        self.text += [f"{k.ljust(width)} : {v}" for k, v in rows]
        cells = "".join(
            f"<tr><th align='left'>{html.escape(k)}</th><td>{_link(v)}</td></tr>" for k, v in rows
        )
        self.html.append(f"<table>{cells}</table>")

    def table(self, header: list[str], rows: list[list[object]]) -> None:
        if not rows:
            self.para("(none)")
            return
        for row in rows:
            self.text.append(
                "  - " + " | ".join(f"{h}: {c}" for h, c in zip(header, row, strict=True))
            )
        head = "".join(f"<th align='left'>{html.escape(h)}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
            for row in rows
        )
        self.html.append(
            f"<table border='1' cellpadding='4' cellspacing='0'><tr>{head}</tr>{body}</table>"
        )

    def pre(self, text: str) -> None:
        self.text.append(text)
        self.html.append(f"<pre>{html.escape(text)}</pre>")

    def message(self, subject: str, settings: Settings) -> MIMEMultipart:
        msg = MIMEMultipart("alternative")
        msg["Subject"] = subject
        msg["From"] = settings.smtp.mail_from
        msg["To"] = ", ".join(settings.alert_emails)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="anomalyops")
        msg.attach(MIMEText("\n".join(self.text).strip() + "\n", "plain", "utf-8"))
        page = (
            "<html><body style='font-family:sans-serif'>" + "\n".join(self.html) + "</body></html>"
        )
        msg.attach(MIMEText(page, "html", "utf-8"))
        return msg


def _link(value: object) -> str:
    text = html.escape(str(value))
    if isinstance(value, str) and (value.startswith(("http://", "https://", "file://", "/"))):
        href = value if "://" in value else f"file://{value}"
        return f"<a href='{html.escape(href)}'>{text}</a>"
    return text


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
    # A feature has several tests (marginal, residual): count features, not tests.
    drifted = sorted({d["feature"] for d in drift if d.get("drifted")})
    if gate.decision == Verdict.FAIL:
        subject = (
            f"{SUBJECT_PREFIX} ds={ds} QUARANTINED: {len(failed)} failed expectation(s), "
            f"{len(anomalies)} TFDV anomaly(ies), {len(drifted)} drifted feature(s)"
        )
        lead = (
            f"The data for {ds} failed the validation gate. It was moved to quarantine and "
            "nothing will train on it; the DAG run is marked failed."
        )
    else:
        subject = (
            f"{SUBJECT_PREFIX} ds={ds} drift warning: {len(drifted)} feature(s) drifted (promoted)"
        )
        lead = (
            f"The data for {ds} is valid but drifted from {_reference_text(block)}. "
            "By policy it was promoted to validated/ so the next training run learns the new "
            "behaviour."
        )
    doc = _Doc()
    doc.para(lead)
    doc.fields(
        [
            *_run_fields(dag_id, run_id, logical_date),
            ("Decision", gate.decision.value),
            ("Outcome", gate.outcome.value),
            ("Rows", gate.rows),
            ("Spec", f"{gate.spec.name} ({gate.spec.fingerprint})" if gate.spec else "-"),
        ]
    )
    doc.heading(f"Failed expectations (Great Expectations): {len(failed)}")
    doc.table(
        ["expectation", "column", "observed"],
        [[f["expectation"], _col(f.get("column")), f.get("observed", "")] for f in failed],
    )
    doc.heading(f"TFDV anomalies: {len(anomalies)}")
    doc.table(["feature", "anomaly"], [[a["feature"], a["short_description"]] for a in anomalies])
    doc.heading(f"Drift vs {_reference_text(block)}" if block.baseline else "Drift")
    if not block.baseline:
        doc.para(block.note or "no baseline day")
    elif any("p_value" in d for d in drift):
        doc.para(
            f"Per feature, two-sample KS tests of the day against the reference days: the "
            f"feature's distribution (ks_2samp) and what the other features do not explain of "
            f"it (ks_2samp_residual). p-values are Bonferroni-corrected over the day's "
            f"{len(drift)} tests and account for the sample sizes and the reference days' own "
            f"day-to-day variation; a feature drifted when p < {block.alpha}. "
            + (
                "This day starts a new regime: the training window restarts here."
                if block.restart
                else "The training window does not restart (no large significant shift)."
            )
        )
        doc.table(
            ["feature", "test", "statistic", "critical", "p (corrected)", "drifted", "policy"],
            [
                [
                    d["feature"],
                    d["comparator"],
                    "-" if d["value"] is None else f"{d['value']:.4f}",
                    "-" if d.get("threshold") is None else f"{d['threshold']:.4f}",
                    f"{d['p_value']:.3g}",
                    ("YES, restart" if d.get("restart") else "YES") if d["drifted"] else "no",
                    d.get("policy", ""),
                ]
                for d in drift
            ],
        )
    else:
        doc.table(
            ["feature", "comparator", "score", "threshold", "drifted", "policy"],
            [
                [
                    d["feature"],
                    d["comparator"],
                    "-" if d["value"] is None else f"{d['value']:.4f}",
                    f"{d['threshold']:.4f}",
                    "YES" if d["drifted"] else "no",
                    d.get("policy", ""),
                ]
                for d in drift
            ],
        )
    doc.heading("Reports")
    reports = gate.reports
    doc.fields(
        [
            ("Data Docs (GX)", reports.data_docs or "-"),
            ("TFDV statistics", reports.statistics_html or "-"),
            ("TFDV anomalies", reports.anomalies or "-"),
            ("Gate decision", reports.gate or "-"),
            *([("Quarantined data", gate.quarantine_path)] if gate.quarantine_path else []),
        ]
    )
    if gate.decision == Verdict.FAIL:
        doc.heading("What next")
        doc.para(
            f"Fix the cause (source data, spec, curated expectations or schema), then "
            f"`anomalyops readmit {ds}` re-runs the gate on the quarantined data; "
            f"`anomalyops readmit {ds} --force --reason '...'` promotes it with a recorded override."
        )
    return doc.message(subject, settings)


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
    doc = _Doc()
    doc.para(f"Task {task_id} of DAG {dag_id} failed (no retries left).")
    doc.fields(
        [
            *_run_fields(dag_id, run_id, logical_date),
            ("Task", task_id),
            ("Try", try_number if try_number is not None else "-"),
            ("Log (web UI)", log_url or "-"),
            ("Log file", log_path or "-"),
        ]
    )
    doc.heading("Error")
    doc.pre(str(error) if error else "(no exception recorded)")
    if quarantine:
        doc.heading(f"Quarantined at stage '{quarantine.get('stage', '?')}'")
        problems = quarantine.get("problems") or []
        doc.table(["problem"], [[p] for p in problems])
        if quarantine.get("location"):
            doc.fields([("Quarantined files", quarantine["location"])])
        if quarantine.get("stage") == "ingest":
            doc.para(
                "Fix the day's files in landing/ (the originals are kept in quarantine/), then "
                "clear the ingest task of this run."
            )
    return doc.message(subject, settings)


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
    doc = _Doc()
    doc.para(day.summary)
    doc.para(
        "The uploads scored that day no longer look like the data the model was trained on, or "
        "something upstream of the uploads broke. Compare them with the recent validated days "
        "(the drift check in gate.json), and let the daily training catch up, or roll back."
    )
    low, high = day.alarm_rate_interval or (None, None)
    doc.fields(
        [
            *_run_fields(dag_id, run_id, logical_date),
            ("Model version", day.version),
            ("Rows scored that day", f"{day.rows:,}"),
            ("Rows flagged", f"{day.flagged:,}"),
            ("Alarm rate (99 % interval)", f"{rate} ({_pct(low)} - {_pct(high)})"),
            ("Calibrated for", _pct(day.calibrated_alarm_rate)),
            ("Band up to", _pct(day.max_alarm_rate)),
            ("Counted since", day.baseline or "the API's counters started"),
            ("Record", record_uri or "-"),
        ]
    )
    return doc.message(subject, settings)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"
