"""The daily served-traffic check: read the scoring API's counters, judge the day, alert.

The judging and the record are core logic (:mod:`anomalyops.served_traffic`); this module
adds the HTTP call to the API and the alert delivery through Airflow's SMTP machinery.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx

from anomalyops.alarm_band import TrafficStatus
from anomalyops.lake import Lake
from anomalyops.served_traffic import (
    Counters,
    TrafficDay,
    assess_served_day,
    previous_day,
    record_uri,
    write_day,
)
from anomalyops.settings import Settings

log = logging.getLogger(__name__)

ACTIVE_PATH = "/v1/models/active"
TRAFFIC_PATH = "/v1/models/{version}/traffic"


class ApiUnreachable(RuntimeError):
    """The scoring API did not answer as expected; the message says what it answered."""


class NoModelServed(RuntimeError):
    """The API is up but serves no model yet (503 on ``/v1/models/active``)."""


@dataclass(frozen=True)
class CheckResult:
    day: TrafficDay
    record_uri: str
    delivery: dict | None
    """The alert's delivery record when one was sent (the day was above its band)."""


def fetch_counters(api_url: str, admin_key: str | None, timeout_s: float) -> Counters:
    """The served version's cumulative counters, from ``/v1/models/active`` then ``/traffic``."""
    headers = {"X-API-Key": admin_key} if admin_key else {}
    with httpx.Client(base_url=api_url.rstrip("/"), timeout=timeout_s, headers=headers) as client:
        active = _get_json(client, ACTIVE_PATH, no_model_ok=True)
        version = active.get("version")
        if not isinstance(version, int):
            raise ApiUnreachable(f"{api_url}{ACTIVE_PATH} named no model version: {active!r}")
        return Counters.model_validate(_get_json(client, TRAFFIC_PATH.format(version=version)))


def _get_json(client: httpx.Client, path: str, *, no_model_ok: bool = False) -> dict:
    try:
        reply = client.get(path)
    except httpx.HTTPError as exc:
        raise ApiUnreachable(f"{client.base_url}{path}: {type(exc).__name__}: {exc}") from exc
    if no_model_ok and reply.status_code == 503:
        raise NoModelServed(f"{client.base_url}{path}: {reply.text[:300]}")
    if reply.status_code != 200:
        raise ApiUnreachable(
            f"{client.base_url}{path} answered {reply.status_code}: {reply.text[:300]}"
        )
    try:
        body = reply.json()
    except ValueError as exc:
        raise ApiUnreachable(f"{client.base_url}{path} did not answer JSON") from exc
    if not isinstance(body, dict):
        raise ApiUnreachable(
            f"{client.base_url}{path} answered {type(body).__name__}, not an object"
        )
    return body


def check(
    ds: str,
    settings: Settings,
    counters: Counters,
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
    logical_date: object = None,
) -> CheckResult:
    """Judge ``ds`` from ``counters``, record it, and email when it is above its band."""
    from anomalyops.alerts import render_traffic_email
    from anomalyops_airflow.alerting import send

    lake = Lake(settings.lake_root)
    mon = settings.monitoring
    day = assess_served_day(
        ds,
        counters,
        previous_day(lake, ds),
        max_ratio=mon.max_alarm_ratio,
        min_rows=mon.min_rows,
    )
    delivery = None
    if day.status == TrafficStatus.ABOVE_BAND:
        msg = render_traffic_email(
            day,
            settings,
            record_uri=record_uri(lake, ds),
            dag_id=dag_id,
            run_id=run_id,
            logical_date=logical_date,
        )
        delivery = send(msg, settings)
        day = day.model_copy(update={"alerts": [{"kind": "served_traffic", **delivery}]})
    uri = write_day(lake, day)
    log.info("served traffic %s: %s (%s)", ds, day.status.value, day.summary)
    return CheckResult(day=day, record_uri=uri, delivery=delivery)
