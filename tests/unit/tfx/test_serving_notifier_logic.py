"""The serving notifier against a fake scoring service (httpx.MockTransport)."""

from __future__ import annotations

import httpx
import pytest

from anomalyops_tfx.components.serving_notifier import logic

URL = "http://api.test"


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _client(handler) -> httpx.Client:
    return httpx.Client(base_url=URL, transport=httpx.MockTransport(handler))


def _run(handler, version=2, timeout=10.0, clock=None):
    clock = clock or FakeClock()
    return logic.notify_and_confirm(
        URL,
        version,
        admin_key="secret",
        timeout_s=timeout,
        poll_interval_s=1.0,
        client=_client(handler),
        sleep=clock.sleep,
        clock=clock,
    )


def test_reload_reply_confirms_at_once():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path, request.headers.get("X-API-Key")))
        return httpx.Response(200, json={"model_version": 2, "failed_versions": []})

    assert _run(handler) == 2
    assert calls == [("POST", "/admin/reload", "secret")]


def test_polls_listing_until_pushed_version_is_active():
    replies = iter([1, 1, 2])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/admin/reload":
            return httpx.Response(200, json={"version": 1})
        return httpx.Response(200, json={"active_version": next(replies), "pinned_version": None})

    assert _run(handler) == 2


def test_times_out_when_the_version_never_shows_up():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/admin/reload":
            return httpx.Response(200, json={"model_version": 1})
        return httpx.Response(200, json={"active_version": 1})

    with pytest.raises(logic.ServingNotConfirmed, match=r"within 5 s.*serves version 1"):
        _run(handler, timeout=5.0)


def test_unreachable_service_is_retried_then_fails():
    clock = FakeClock()

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(logic.ServingNotConfirmed, match="ConnectError"):
        _run(handler, timeout=3.0, clock=clock)
    assert clock.now >= 3.0


def test_service_coming_up_late_is_fine():
    state = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        state["n"] += 1
        if state["n"] < 3:
            return httpx.Response(503, json={"detail": "starting"})
        return httpx.Response(200, json={"model_version": 2})

    assert _run(handler) == 2


def test_bad_key_fails_at_once():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"detail": "bad key"})

    with pytest.raises(logic.ServingNotConfirmed, match="403"):
        _run(handler)


def test_failed_load_or_pin_fails_with_the_reason():
    def failed(request):
        return httpx.Response(
            200, json={"model_version": 1, "failed_versions": [{"version": 2, "error": "bad pb"}]}
        )

    with pytest.raises(logic.ServingNotConfirmed, match="bad pb"):
        _run(failed)

    def pinned(request):
        return httpx.Response(200, json={"model_version": 1, "pinned_version": 1})

    with pytest.raises(logic.ServingNotConfirmed, match="pinned to version 1"):
        _run(pinned)
