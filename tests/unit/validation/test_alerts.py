"""Alert messages (text + HTML), SMTP settings derivation, and a send that cannot connect."""

import socket
from html import escape

from anomalyops import alerts
from anomalyops.settings import Settings, SmtpSettings
from anomalyops_airflow import alerting
from anomalyops_airflow.env import smtp_airflow_env

GATE = {
    "ds": "2026-11-06",
    "decision": "fail",
    "outcome": "quarantined",
    "rows": 1440,
    "reasons": [],
    "spec": {"name": "s", "fingerprint": "abc123"},
    "expectations": {
        "failed": [
            {
                "expectation": "expect_column_values_to_be_between",
                "column": "flow",
                "observed": "288 of 1440 values (20.00%) unexpected, e.g. 5010",
            }
        ]
    },
    "tfdv": {"anomalies": [{"feature": "flow", "short_description": "Out-of-range values"}]},
    "drift": {
        "baseline": "2026-11-05",
        "scores": [
            {
                "feature": "flow",
                "comparator": "jensen_shannon_divergence",
                "value": 0.41,
                "threshold": 0.3,
                "drifted": True,
                "policy": "warn",
            },
            {
                "feature": "temp",
                "comparator": "jensen_shannon_divergence",
                "value": 0.02,
                "threshold": 0.3,
                "drifted": False,
                "policy": "warn",
            },
        ],
    },
    "reports": {
        "data_docs": "file:///lake/reports/data_docs/index.html",
        "statistics_html": "/lake/reports/ds=2026-11-06/tfdv/stats.html",
    },
    "quarantine_path": "/lake/quarantine/ds=2026-11-06",
}


def parts(msg):
    text, html = (p.get_payload(decode=True).decode() for p in msg.get_payload())
    return text, html


def test_quarantine_email_has_every_finding_in_both_parts():
    settings = Settings(alert_emails=["a@x.test", "b@x.test"])
    msg = alerts.render_gate_email(
        GATE,
        settings,
        dag_id="anomalyops_ingest",
        run_id="r1",
        logical_date="2026-11-06T00:00:00+00:00",
    )
    assert msg["Subject"] == (
        "[anomalyops] ds=2026-11-06 QUARANTINED: 1 failed expectation(s), 1 TFDV anomaly(ies), 1 drifted feature(s)"
    )
    assert msg["To"] == "a@x.test, b@x.test" and msg.get_content_subtype() == "alternative"
    text, html = parts(msg)
    for needle in (
        "anomalyops_ingest",
        "r1",
        "2026-11-06T00:00:00+00:00",
        "expect_column_values_to_be_between",
        "288 of 1440 values (20.00%) unexpected, e.g. 5010",
        "Out-of-range values",
        "0.4100",
        "0.3000",
        "YES",
        "file:///lake/reports/data_docs/index.html",
        "/lake/reports/ds=2026-11-06/tfdv/stats.html",
        "anomalyops readmit 2026-11-06",
    ):
        assert needle in text and needle in html, needle
    assert "href='file:///lake/reports/ds=2026-11-06/tfdv/stats.html'" in html


def test_drift_email_and_first_day_note():
    gate = {**GATE, "decision": "warn", "expectations": {"failed": []}, "tfdv": {"anomalies": []}}
    msg = alerts.render_gate_email(gate, Settings())
    assert (
        msg["Subject"]
        == "[anomalyops] ds=2026-11-06 drift warning: 1 feature(s) drifted (promoted)"
    )
    text, _ = parts(msg)
    assert "readmit" not in text and "Drift vs 2026-11-05" in text


def test_failure_email_names_log_and_quarantine_problems():
    msg = alerts.render_failure_email(
        Settings(),
        dag_id="d",
        task_id="ingest",
        run_id="r",
        logical_date="2026-11-06",
        try_number=1,
        error="AirflowFailException: boom",
        log_url="http://localhost:8080/log",
        log_path="/logs/attempt=1.log",
        quarantine={
            "stage": "ingest",
            "problems": ["landing/x.csv: missing column 'flow'"],
            "location": "/lake/quarantine/ds=2026-11-06",
        },
    )
    assert msg["Subject"] == "[anomalyops] task failed: d.ingest (logical date 2026-11-06)"
    text, html = parts(msg)
    for needle in (
        "http://localhost:8080/log",
        "/logs/attempt=1.log",
        "AirflowFailException: boom",
        "missing column 'flow'",
        "/lake/quarantine/ds=2026-11-06",
    ):
        assert needle in text and escape(needle) in html


def test_smtp_default_connection_derives_from_settings():
    """One ``smtp_default`` connection, read the way the SMTP provider's hook reads it."""
    from airflow.models.connection import Connection
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    def hook_for(smtp: SmtpSettings) -> SmtpHook:
        env = smtp_airflow_env(smtp)
        assert set(env) == {"AIRFLOW_CONN_SMTP_DEFAULT"}  # no [smtp] to keep in step
        hook = SmtpHook()
        hook.smtp_connection = Connection.from_json(env["AIRFLOW_CONN_SMTP_DEFAULT"])
        return hook

    hook = hook_for(SmtpSettings(host="mail.example", port=2525, starttls=True, mail_from="x@y"))
    assert (hook.host, hook.port, hook.smtp_starttls, hook.use_ssl) == (
        "mail.example",
        2525,
        True,
        False,
    )
    assert (hook.from_email, hook.timeout, hook.smtp_retry_limit) == ("x@y", 10, 2)
    assert hook.smtp_user == "" and hook.smtp_password == ""
    plain = hook_for(SmtpSettings())
    assert (plain.host, plain.port, plain.smtp_starttls, plain.use_ssl) == (
        "127.0.0.1",
        8025,
        False,
        False,
    )
    with_auth = hook_for(SmtpSettings(user="u", password='p@ss:/"w', ssl=True))
    assert (with_auth.smtp_user, with_auth.smtp_password) == ("u", 'p@ss:/"w')
    assert with_auth.use_ssl and not with_auth.smtp_starttls


def test_send_to_a_closed_port_returns_a_failed_record(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in smtp_airflow_env(SmtpSettings(port=port)).items():
        monkeypatch.setenv(key, value)
    settings = Settings(smtp=SmtpSettings(port=port))
    record = alerting.send(alerts.render_gate_email(GATE, settings), settings)
    assert record["sent"] is False and "ConnectionRefusedError" in record["error"]
    assert record["server"] == f"127.0.0.1:{port}" and record["to"] == ["ops@localhost"]


def test_callback_stays_quiet_when_the_task_already_alerted(monkeypatch):
    sent = []
    monkeypatch.setattr(alerting, "send", lambda *a, **k: sent.append(a))
    exc = RuntimeError("quarantined")
    setattr(exc, alerting.ALERTED_ATTR, True)
    alerting.on_failure_callback({"exception": exc})
    assert sent == []


def test_calibrated_drift_email_counts_features_and_says_whether_the_window_restarts():
    entry = {
        "feature": "flow",
        "comparator": "ks_2samp",
        "value": 0.93,
        "threshold": 0.21,
        "p_value": 1e-9,
        "alpha": 0.01,
        "drifted": True,
        "restart": True,
        "policy": "warn",
    }
    residual = {**entry, "comparator": "ks_2samp_residual", "value": 0.6, "restart": False}
    quiet = {**entry, "feature": "temp", "value": 0.05, "p_value": 1.0, "drifted": False}
    quiet["restart"] = False
    drift = {
        "baseline": "2026-11-05",
        "reference_days": ["2026-10-30", "2026-11-05"],
        "alpha": 0.01,
        "restart": True,
        "scores": [entry, residual, quiet],
    }
    gate = {**GATE, "decision": "warn", "expectations": {"failed": []}, "tfdv": {"anomalies": []}}
    msg = alerts.render_gate_email({**gate, "drift": drift}, Settings())
    assert msg["Subject"].endswith("drift warning: 1 feature(s) drifted (promoted)")
    text, html = parts(msg)
    for needle in (
        "the reference days 2026-10-30 .. 2026-11-05",
        "ks_2samp_residual",
        "0.9300",
        "0.2100",
        "1e-09",
        "YES, restart",
        "the training window restarts here",
        "Bonferroni-corrected over the day's 3 tests",
    ):
        assert needle in text and escape(needle) in html, needle
    drift["restart"], entry["restart"] = False, False
    text, _ = parts(alerts.render_gate_email({**gate, "drift": drift}, Settings()))
    assert "does not restart" in text and "YES, restart" not in text


def test_task_log_location_is_the_url_and_the_file_the_task_handler_writes(tmp_path):
    import logging

    from airflow.utils.log.file_task_handler import FileTaskHandler

    class TI:
        log_url = "http://localhost:8080/dags/d/grid?task_id=t"

    task_log = logging.getLogger("airflow.task")
    handler = FileTaskHandler(base_log_folder=str(tmp_path))
    task_log.addHandler(handler)
    try:
        assert alerting.task_log_location(TI()) == (TI.log_url, None)  # no context set yet
        # What set_context(ti) does: open the try's file under the base folder.
        log_file = tmp_path / "dag_id=d" / "attempt=1.log"
        log_file.parent.mkdir()
        handler.handler = logging.FileHandler(log_file, delay=True)
        assert alerting.task_log_location(TI()) == (TI.log_url, str(log_file))
    finally:
        task_log.removeHandler(handler)


def test_the_html_body_escapes_what_the_data_says_and_the_text_keeps_it(tmp_path):
    """Templates autoescape HTML: a hostile value in the data is shown, never interpreted."""
    hostile = "<script>alert('x')</script>"
    gate = {**GATE, "tfdv": {"anomalies": [{"feature": hostile, "short_description": "a & b"}]}}
    text, html = parts(alerts.render_gate_email(gate, Settings(), run_id=hostile))
    assert hostile in text and "a & b" in text
    assert "<script>" not in html and escape(hostile) in html and "a &amp; b" in html
    msg = alerts.render_failure_email(
        Settings(),
        dag_id="d",
        task_id="t",
        run_id=None,
        logical_date=None,
        try_number=None,
        error=hostile,
        log_url="javascript:alert(1)",
        log_path=None,
    )
    text, html = parts(msg)
    assert "<pre>" + escape(hostile) + "</pre>" in html and "href='javascript" not in html


def test_the_templates_ship_with_the_package():
    from importlib.resources import files

    folder = files("anomalyops") / "templates" / "alerts"
    for name in ("gate", "failure", "traffic", "landing_late"):
        for kind in ("txt", "html"):
            assert (folder / f"{name}.{kind}.j2").is_file()


def test_data_late_email_says_what_was_there_and_how_to_finish_the_day():
    from anomalyops.sources.arrival import Arrival, ArrivalState

    hostile = "<b>x</b>.csv"
    arrival = Arrival(
        ArrivalState.INCOMPLETE,
        [hostile],
        "1 file(s) in /lake/landing/2026-11-05/, waiting for _READY",
        ignored=["notes.txt"],
    )
    msg = alerts.render_late_email(
        "2026-11-05",
        arrival,
        "2026-11-06 06:00 UTC",
        Settings(),
        folder="/lake/landing/2026-11-05/",
    )
    assert (
        msg["Subject"]
        == "[anomalyops] data late: 2026-11-05 had not arrived by 2026-11-06 06:00 UTC"
    )
    text, html = parts(msg)
    for needle in (
        "waiting for _READY",
        "notes.txt",
        "write _READY there",
        "10 min",
        "clear the land task",
    ):
        assert needle in text and needle in html, needle
    assert hostile in text and "<b>x</b>" not in html and escape(hostile) in html
