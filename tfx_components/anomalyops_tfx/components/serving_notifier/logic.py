"""Reload the scoring service and wait until it serves the pushed version. No TFX, just httpx."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx

log = logging.getLogger(__name__)

RELOAD_PATH = "/admin/reload"
MODELS_PATH = "/v1/models"
VERSION_FIELDS = ("model_version", "version", "active_version")


class ServingNotConfirmed(RuntimeError):
    """The service did not serve the pushed version in time (or cannot, e.g. it is pinned)."""


def served_version(payload: dict) -> int | None:
    """The served version in a reload or listing reply (the API says ``model_version`` /
    ``active_version``; ``version`` is tolerated too)."""
    for key in VERSION_FIELDS:
        value = payload.get(key)
        if isinstance(value, int):
            return value
    return None


def _check_blockers(payload: dict, version: int) -> None:
    for failed in payload.get("failed_versions") or []:
        if failed.get("version") == version:
            raise ServingNotConfirmed(
                f"the scoring service failed to load pushed version {version}: {failed.get('error')}"
            )
    pinned = payload.get("pinned_version")
    if pinned is not None and pinned != version:
        raise ServingNotConfirmed(
            f"the scoring service is pinned to version {pinned}; pushed version {version} will "
            "not be served until someone unpins it (POST /admin/unpin)"
        )


def notify_and_confirm(
    api_url: str,
    version: int,
    *,
    admin_key: str | None,
    timeout_s: float,
    poll_interval_s: float = 2.0,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """POST the reload, then poll the listing until ``version`` is served; return it.

    Connection errors and 5xx replies are retried until ``timeout_s``; a 4xx (bad key, wrong
    URL) fails at once, as does a service that reports the version failed to load or is pinned.
    """
    headers = {"X-API-Key": admin_key} if admin_key else {}
    own_client = client is None
    client = client or httpx.Client(base_url=api_url.rstrip("/"), timeout=min(30.0, timeout_s))
    deadline = clock() + timeout_s
    last = "no reply yet"
    reloaded = False
    try:
        while True:
            try:
                if not reloaded:
                    reply = client.post(RELOAD_PATH, headers=headers)
                    _raise_for_client_error(reply)
                    if reply.status_code < 300:
                        reloaded = True
                        payload = reply.json()
                        _check_blockers(payload, version)
                        if served_version(payload) == version:
                            return version
                        last = f"reload answered version {served_version(payload)}"
                    else:
                        last = f"reload answered HTTP {reply.status_code}"
                else:
                    reply = client.get(MODELS_PATH, headers=headers)
                    _raise_for_client_error(reply)
                    if reply.status_code < 300:
                        payload = reply.json()
                        _check_blockers(payload, version)
                        if served_version(payload) == version:
                            return version
                        last = f"service serves version {served_version(payload)}"
                    else:
                        last = f"listing answered HTTP {reply.status_code}"
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if clock() >= deadline:
                raise ServingNotConfirmed(
                    f"{api_url} did not serve pushed version {version} within {timeout_s:g} s "
                    f"(last: {last})"
                )
            log.info("Waiting for %s to serve version %d (%s)", api_url, version, last)
            sleep(poll_interval_s)
    finally:
        if own_client:
            client.close()


def _raise_for_client_error(reply: httpx.Response) -> None:
    if 400 <= reply.status_code < 500:
        raise ServingNotConfirmed(
            f"{reply.request.method} {reply.request.url} answered {reply.status_code}: "
            f"{reply.text[:300]}"
        )
