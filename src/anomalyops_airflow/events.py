"""Telling Airflow about a day promoted outside a DAG run (``anomalyops readmit``).

Inside the ingest DAG the ``promote`` task's Asset (Dataset) outlet does this; a re-admission
from the command line asks Airflow to record the same event through its stable REST API, so the
training DAG (scheduled on ``VALIDATED``) runs as if the day had passed the gate on time. Nothing
here writes into Airflow's database (Airflow 3's task SDK forbids that anyway).

The two lines' APIs differ, and the installed Airflow picks which one is spoken
(``compat.AIRFLOW_3``):

Airflow 2 (``/api/v1``)
    ``POST /api/v1/datasets/events`` with ``{"dataset_uri": ..., "extra": ...}`` and HTTP basic
    auth (the ``basic_auth`` API backend, which the compose stack enables).
Airflow 3 (``/api/v2``)
    A JWT from the auth manager's ``POST /auth/token`` (SimpleAuthManager and FAB both serve it),
    the asset's id from ``GET /api/v2/assets?uri_pattern=...`` (a substring match: the exact URI
    is picked from the answer), then ``POST /api/v2/assets/events`` with ``{"asset_id": ...,
    "extra": ...}``, each with ``Authorization: Bearer <token>``.

Configuration (environment):

``ANOMALYOPS_AIRFLOW_API_URL``
    The webserver's (api-server's on 3.x) root URL; defaults to Airflow's own
    ``AIRFLOW__WEBSERVER__BASE_URL`` (``AIRFLOW__API__BASE_URL`` on 3.x).
``ANOMALYOPS_AIRFLOW_API_USER`` / ``ANOMALYOPS_AIRFLOW_API_PASSWORD``
    An Airflow user allowed to create Dataset/Asset events.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from anomalyops_airflow.dag_ids import TRAIN_DAG_ID

log = logging.getLogger(__name__)

URL_ENV = "ANOMALYOPS_AIRFLOW_API_URL"
USER_ENV = "ANOMALYOPS_AIRFLOW_API_USER"
PASSWORD_ENV = "ANOMALYOPS_AIRFLOW_API_PASSWORD"
BASE_URL_ENV = "AIRFLOW__WEBSERVER__BASE_URL"
EVENTS_PATH = "/api/v1/datasets/events"

# Airflow 3: the api-server's root, its auth manager's token endpoint and the v2 asset routes.
BASE_URL_ENV_3 = "AIRFLOW__API__BASE_URL"
TOKEN_PATH = "/auth/token"
ASSETS_PATH = "/api/v2/assets"
ASSET_EVENTS_PATH = "/api/v2/assets/events"


class _Refused(Exception):
    """One step of the Airflow 3 exchange failed; the message is the whole answer."""


def announce_validated(
    ds: str,
    path: str,
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
    airflow_3: bool | None = None,
    transport: Any = None,
) -> str:
    """Ask Airflow to record a ``VALIDATED`` Dataset/Asset event; return a sentence saying what
    happened.

    Never raises: without a configured or reachable Airflow the day is still validated, and the
    sentence names what to configure and what else to do. ``airflow_3`` picks the REST API
    (default: the installed Airflow's line); ``transport`` is an ``httpx`` transport for tests.
    """
    import httpx

    from anomalyops_airflow.datasets import VALIDATED

    if airflow_3 is None:
        from anomalyops_airflow.compat import AIRFLOW_3 as airflow_3

    env = os.environ if env is None else env
    fallback = (
        f"the next training run includes {ds}, or trigger it now: "
        f"`airflow dags trigger {TRAIN_DAG_ID}`"
    )
    base_url_env = BASE_URL_ENV_3 if airflow_3 else BASE_URL_ENV
    base = (env.get(URL_ENV) or env.get(base_url_env) or "").rstrip("/")
    user, password = env.get(USER_ENV), env.get(PASSWORD_ENV)
    missing = [
        name
        for name, value in (
            (f"{URL_ENV} (or {base_url_env})", base),
            (USER_ENV, user),
            (PASSWORD_ENV, password),
        )
        if not value
    ]
    kind = "asset" if airflow_3 else "Dataset"
    if missing:
        return (
            f"did not tell Airflow about {ds}: set {', '.join(missing)} to let readmit record "
            f"the {kind} event through Airflow's REST API; {fallback}"
        )
    extra = {"ds": ds, "path": path, "via": "readmit"}
    with httpx.Client(timeout=timeout_s, transport=transport) as client:
        if airflow_3:
            return _announce_v2(client, base, user, password, VALIDATED.uri, ds, extra, fallback)
        url = base + EVENTS_PATH
        body = {"dataset_uri": VALIDATED.uri, "extra": extra}
        try:
            response = client.post(url, json=body, auth=(user, password))
        except httpx.HTTPError as exc:
            log.debug("dataset event request failed", exc_info=True)
            return _unreachable(url, exc, fallback)
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
    return (
        f"Airflow did not record the Dataset event (HTTP {response.status_code} from {url}: "
        f"{_detail(response)}); {fallback}"
    )


def _announce_v2(
    client: Any,
    base: str,
    user: str,
    password: str,
    uri: str,
    ds: str,
    extra: dict[str, str],
    fallback: str,
) -> str:
    """Airflow 3: token, asset id, event; each step's failure names its URL and status."""
    import httpx

    def call(method: str, url: str, ok: tuple[int, ...], what: str, **kwargs: Any) -> Any:
        try:
            response = client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            log.debug("%s request failed", what, exc_info=True)
            raise _Refused(_unreachable(url, exc, fallback)) from exc
        if response.status_code in ok:
            try:
                answer = response.json()
            except ValueError:
                answer = None
            if not isinstance(answer, dict):
                raise _Refused(
                    f"Airflow's answer to {what} was not a JSON object (HTTP "
                    f"{response.status_code} from {url}: {_detail(response)}); {fallback}"
                )
            return answer
        if response.status_code in (401, 403):
            raise _Refused(
                f"Airflow refused {what} (HTTP {response.status_code} from {url}): check "
                f"{USER_ENV}/{PASSWORD_ENV} (a user of Airflow's auth manager allowed to create "
                f"asset events; with SimpleAuthManager one in [core] simple_auth_manager_users "
                f"with role op or admin); {fallback}"
            )
        if response.status_code == 404 and what == "the asset event":
            raise _Refused(_unknown_asset(uri, fallback))
        raise _Refused(
            f"Airflow did not answer {what} (HTTP {response.status_code} from {url}: "
            f"{_detail(response)}); {fallback}"
        )

    try:
        token_url = base + TOKEN_PATH
        token = call(
            "POST",
            token_url,
            (200, 201),
            "the token request",
            json={"username": user, "password": password},
        ).get("access_token")
        if not token:
            raise _Refused(f"Airflow's answer from {token_url} had no access_token; {fallback}")
        headers = {"Authorization": f"Bearer {token}"}
        assets_url = base + ASSETS_PATH
        found = call(
            "GET",
            assets_url,
            (200,),
            "the asset lookup",
            params={"uri_pattern": uri, "limit": 100},
            headers=headers,
        )
        # uri_pattern is a case-insensitive substring match: only the exact URI is ours.
        ids = [
            a.get("id")
            for a in found.get("assets") or ()
            if isinstance(a, dict) and a.get("uri") == uri
        ]
        if not ids or ids[0] is None:
            raise _Refused(_unknown_asset(uri, fallback))
        events_url = base + ASSET_EVENTS_PATH
        call(
            "POST",
            events_url,
            (200, 201),
            "the asset event",
            json={"asset_id": ids[0], "extra": extra},
            headers=headers,
        )
    except _Refused as refused:
        return str(refused)
    return f"recorded an asset event for {ds} through {events_url}: the training DAG will run"


def _unreachable(url: str, exc: Exception, fallback: str) -> str:
    return (
        f"could not reach Airflow's REST API at {url} ({type(exc).__name__}: {exc}); "
        f"check {URL_ENV}; {fallback}"
    )


def _unknown_asset(uri: str, fallback: str) -> str:
    return (
        f"Airflow does not know the validated-data asset {uri} yet (no parsed DAG uses it); "
        f"{fallback}"
    )


def _detail(response: Any) -> str:
    return response.text.strip().replace("\n", " ")[:300]
