"""Alert delivery through Airflow's email machinery, and the failure callback for every DAG.

Transport: ``airflow.utils.email.send_mime_email``, i.e. Airflow's ``[smtp]`` configuration
(``AIRFLOW__SMTP__*``, derived from ``ANOMALYOPS_SMTP__*`` by ``anomalyops_airflow.env``) and
credentials from the ``smtp_default`` connection. The messages come from ``anomalyops.alerts``.
A failed send never raises here: it is logged and returned as a delivery record, so the caller
records it (gate.json) and still fails its task.
"""

from __future__ import annotations

import json
import logging
import os
from email.mime.multipart import MIMEMultipart

from anomalyops.alerts import render_failure_email
from anomalyops.settings import Settings, get_settings

log = logging.getLogger(__name__)

ALERTED_ATTR = "anomalyops_alerted"
"""Set on an exception whose task already emailed its own alert (the callback then stays quiet)."""


# -- sending ---------------------------------------------------------------------------------
def send(msg: MIMEMultipart, settings: Settings | None = None) -> dict:
    """Send through Airflow's SMTP machinery; return a delivery record (never raises)."""
    from airflow.configuration import conf
    from airflow.utils.email import send_mime_email

    from anomalyops.validation.report import now

    settings = settings or get_settings()
    to = list(settings.alert_emails)
    record: dict = {"to": to, "subject": str(msg["Subject"]), "at": now()}
    host, port = conf.get("smtp", "smtp_host"), conf.getint("smtp", "smtp_port")
    record["server"] = f"{host}:{port}"
    if (host, port) != (settings.smtp.host, settings.smtp.port):
        log.warning(
            "Airflow's [smtp] says %s:%s but ANOMALYOPS_SMTP__HOST/PORT say %s:%s; Airflow's "
            "wins. Derive one from the other (anomalyops airflow-env).",
            host,
            port,
            settings.smtp.host,
            settings.smtp.port,
        )
    if not to:
        record.update(sent=False, error="no recipients (ANOMALYOPS_ALERT_EMAILS is empty)")
        log.error("alert not sent: %s", record["error"])
        return record
    try:
        send_mime_email(
            e_from=settings.smtp.mail_from, e_to=to, mime_msg=msg, conn_id="smtp_default"
        )
    except Exception as exc:
        record.update(sent=False, error=f"{type(exc).__name__}: {exc}")
        log.error(
            "could not send alert %r to %s via %s: %s",
            record["subject"],
            to,
            record["server"],
            record["error"],
        )
        return record
    record["sent"] = True
    log.info("alert %r sent to %s via %s", record["subject"], to, record["server"])
    return record


# -- the failure callback --------------------------------------------------------------------
def task_log_location(ti) -> tuple[str | None, str | None]:
    """(web UI URL, local file path) of a task instance's log for its current try."""
    url = path = None
    try:
        url = ti.log_url
    except Exception:
        log.debug("no log URL", exc_info=True)
    try:
        from airflow.configuration import conf
        from airflow.utils.log.file_task_handler import FileTaskHandler

        handler = next(
            (
                h
                for h in logging.getLogger("airflow.task").handlers
                if isinstance(h, FileTaskHandler)
            ),
            None,
        )
        base = handler.local_base if handler else conf.get("logging", "base_log_folder")
        renderer = handler or FileTaskHandler(base_log_folder=base)
        path = os.path.join(base, renderer._render_filename(ti, ti.try_number))
    except Exception:
        log.debug("no log path", exc_info=True)
    return url, path


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
