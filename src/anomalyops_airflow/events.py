"""Telling Airflow about a day promoted outside a DAG run (``anomalyops readmit``).

Inside the ingest DAG the ``promote`` task's Dataset outlet does this; a re-admission from the
command line asks Airflow to record the same Dataset event through its stable REST API
(``POST /api/v1/datasets/events``), so the training DAG (scheduled on ``VALIDATED``) runs as
if the day had passed the gate on time. Nothing here writes into Airflow's database.

Configuration (environment):

``ANOMALYOPS_AIRFLOW_API_URL``
    The webserver's root URL; defaults to Airflow's own ``AIRFLOW__WEBSERVER__BASE_URL``.
``ANOMALYOPS_AIRFLOW_API_USER`` / ``ANOMALYOPS_AIRFLOW_API_PASSWORD``
    An Airflow user allowed to create Dataset events, sent with HTTP basic auth (the
    ``basic_auth`` API backend, which the compose stack enables).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from anomalyops_airflow.dag_ids import TRAIN_DAG_ID

log = logging.getLogger(__name__)

URL_ENV = "ANOMALYOPS_AIRFLOW_API_URL"
USER_ENV = "ANOMALYOPS_AIRFLOW_API_USER"
PASSWORD_ENV = "ANOMALYOPS_AIRFLOW_API_PASSWORD"
BASE_URL_ENV = "AIRFLOW__WEBSERVER__BASE_URL"
EVENTS_PATH = "/api/v1/datasets/events"


def announce_validated(
    ds: str, path: str, *, env: Mapping[str, str] | None = None, timeout_s: float = 10.0
) -> str:
    """Ask Airflow to record a ``VALIDATED`` Dataset event; return a sentence saying what happened.

    Never raises: without a configured or reachable Airflow the day is still validated, and the
    sentence names what to configure and what else to do.
    """
    import httpx

    from anomalyops_airflow.datasets import VALIDATED

    env = os.environ if env is None else env
    fallback = (
        f"the next training run includes {ds}, or trigger it now: "
        f"`airflow dags trigger {TRAIN_DAG_ID}`"
    )
    base = (env.get(URL_ENV) or env.get(BASE_URL_ENV) or "").rstrip("/")
    user, password = env.get(USER_ENV), env.get(PASSWORD_ENV)
    missing = [
        name
        for name, value in (
            (f"{URL_ENV} (or {BASE_URL_ENV})", base),
            (USER_ENV, user),
            (PASSWORD_ENV, password),
        )
        if not value
    ]
    if missing:
        return (
            f"did not tell Airflow about {ds}: set {', '.join(missing)} to let readmit record "
            f"the Dataset event through Airflow's REST API; {fallback}"
        )
    url = base + EVENTS_PATH
    body = {"dataset_uri": VALIDATED.uri, "extra": {"ds": ds, "path": path, "via": "readmit"}}
    try:
        response = httpx.post(url, json=body, auth=(user, password), timeout=timeout_s)
    except httpx.HTTPError as exc:
        log.debug("dataset event request failed", exc_info=True)
        return (
            f"could not reach Airflow's REST API at {url} ({type(exc).__name__}: {exc}); "
            f"check {URL_ENV}; {fallback}"
        )
    if response.status_code == 200:
        return f"recorded a Dataset event for {ds} through {url}: the training DAG will run"
    if response.status_code == 404:
        return (
            f"Airflow does not know the validated-data Dataset {VALIDATED.uri} yet (no parsed "
            f"DAG uses it); {fallback}"
        )
    if response.status_code in (401, 403):
        return (
            f"Airflow refused the Dataset event (HTTP {response.status_code} from {url}): check "
            f"{USER_ENV}/{PASSWORD_ENV} (a user allowed to create Dataset events) and that "
            f"Airflow's [api] auth_backends includes basic_auth; {fallback}"
        )
    detail = response.text.strip().replace("\n", " ")[:300]
    return (
        f"Airflow did not record the Dataset event (HTTP {response.status_code} from {url}: "
        f"{detail}); {fallback}"
    )
