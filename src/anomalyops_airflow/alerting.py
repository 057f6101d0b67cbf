"""Alert delivery through Airflow's SMTP machinery, and the failure callback for every DAG.

Transport: the SMTP provider's ``SmtpHook`` on the ``smtp_default`` connection, the single
source of SMTP settings (host, port, login, STARTTLS/SSL, timeout, retries); the embedded run
and the containers derive it from ``ANOMALYOPS_SMTP__*`` (``anomalyops_airflow.env``). The
messages come from ``anomalyops.alerts``. A failed send never raises here: it is logged and
returned as a delivery record, so the caller records it (gate.json) and still fails its task.
"""

from __future__ import annotations

import json
import logging
from email.mime.multipart import MIMEMultipart

from anomalyops.alerts import render_failure_email
from anomalyops.settings import Settings, get_settings
from anomalyops_airflow.env import SMTP_CONN_ID

log = logging.getLogger(__name__)

ALERTED_ATTR = "anomalyops_alerted"
"""Set on an exception whose task already emailed its own alert (the callback then stays quiet)."""


# -- sending ---------------------------------------------------------------------------------
def send(msg: MIMEMultipart, settings: Settings | None = None) -> dict:
    """Send through the ``smtp_default`` connection; return a delivery record (never raises)."""
    from anomalyops.validation.report import now

    settings = settings or get_settings()
    to = list(settings.alert_emails)
    record: dict = {"to": to, "subject": str(msg["Subject"]), "at": now(), "server": None}
    if not to:
        record.update(sent=False, error="no recipients (ANOMALYOPS_ALERT_EMAILS is empty)")
        log.error("alert not sent: %s", record["error"])
        return record
    try:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        from anomalyops_airflow.compat import BaseHook

        conn = BaseHook.get_connection(SMTP_CONN_ID)
        record["server"] = f"{conn.host}:{conn.port}"
        # The hook connects, negotiates STARTTLS/SSL, logs in and retries as the connection
        # says. Its own send builds an HTML-only message; ours is text + HTML, so the finished
        # message goes to the client the hook opened.
        with SmtpHook(smtp_conn_id=SMTP_CONN_ID) as hook:
            client = hook._smtp_client
            client.sendmail(settings.smtp.mail_from, to, msg.as_string())
            client.quit()
    except Exception as exc:
        record.update(sent=False, error=f"{type(exc).__name__}: {exc}")
        log.error(
            "could not send alert %r to %s via %s: %s",
            record["subject"],
            to,
            record["server"] or f"connection {SMTP_CONN_ID!r}",
            record["error"],
        )
        return record
    record["sent"] = True
    log.info("alert %r sent to %s via %s", record["subject"], to, record["server"])
    return record


# -- the failure callback --------------------------------------------------------------------
def task_log_location(ti) -> tuple[str | None, str | None]:
    """(web UI URL, local file path) of a task instance's log for its current try.

    The URL is ``ti.log_url``. Airflow 2.10 has no public call that renders a log file's path
    (``TaskInstance`` has no ``log_filepath``; only ``FileTaskHandler``'s private
    ``_render_filename`` does it), so the path is the file the task's log handler is writing
    now: after ``set_context(ti)`` a ``FileTaskHandler`` holds a ``logging.FileHandler`` in its
    ``handler`` attribute, whose ``baseFilename`` is that file (``airflow tasks run`` moves the
    handler to the root logger while the task runs). Outside the task's own process (a
    callback for a task that was killed), under ``dag.test()`` (logs to stdout) or with a
    handler that writes no local file, there
    is no path and the email carries the URL only.
    """
    url = path = None
    try:
        url = ti.log_url
    except Exception:
        log.debug("no log URL", exc_info=True)
    try:
        from airflow.utils.log.file_task_handler import FileTaskHandler

        # `airflow tasks run` moves the task's handlers from "airflow.task" to the root logger
        # while the task runs; look in both.
        handlers = [*logging.getLogger("airflow.task").handlers, *logging.getLogger().handlers]
        for handler in handlers:
            inner = (
                getattr(handler, "handler", None) if isinstance(handler, FileTaskHandler) else None
            )
            if isinstance(inner, logging.FileHandler):
                path = inner.baseFilename
                break
    except Exception:
        log.debug("no log path", exc_info=True)
    return url, path


def run_info(context) -> dict:
    """The run an alert is about, for the emails' summary: DAG, run id, logical date."""
    dag = context.get("dag")
    return {
        "dag_id": getattr(dag, "dag_id", None),
        "run_id": context.get("run_id"),
        "logical_date": context.get("logical_date"),
    }


def on_failure_callback(context) -> None:
    """``on_failure_callback`` for every project DAG: email the failure with its log location.

    Tasks that already sent their own alert (the gate's quarantine) mark their exception and
    are skipped here, so one failure means one email.
    """
    exc = context.get("exception")
    if getattr(exc, ALERTED_ATTR, False):
        log.info("failure already alerted by the task itself")
        return
    try:
        settings = get_settings()
        ti = context["task_instance"]
        url, path = task_log_location(ti)
        quarantine = _quarantine_reason(settings, context.get("ds"))
        msg = render_failure_email(
            settings,
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=context.get("run_id"),
            logical_date=context.get("logical_date"),
            try_number=ti.try_number,
            error=f"{type(exc).__name__}: {exc}" if exc else None,
            log_url=url,
            log_path=path,
            quarantine=quarantine,
        )
        record = send(msg, settings)
        if not record["sent"]:
            log.error("failure alert for %s.%s was not delivered", ti.dag_id, ti.task_id)
    except Exception:  # a callback must never hide the task's own failure
        log.exception("the failure callback could not build or send its alert")


def _quarantine_reason(settings: Settings, ds: str | None) -> dict | None:
    if not ds:
        return None
    from anomalyops.lake import Lake, Zone
    from anomalyops.validation.report import read_reason

    lake = Lake(settings.lake_root)
    try:
        reason = read_reason(lake, ds)
    except (OSError, json.JSONDecodeError):
        return None
    if reason is None:
        return None
    return {**reason, "location": lake.uri(lake.partition_path(Zone.QUARANTINE, ds))}
