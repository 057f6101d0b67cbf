"""Logging and request ids: the dictConfig the app factory applies (JSON and text lines), the
X-Request-ID middleware (echoed, on every record of the request, hostile values replaced and
never logged), INFO events of the model registry, and process metrics in /metrics. The apps
here are built without running their lifespan (no model, no TensorFlow)."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from anomalyops_api.demo_model import metadata
from anomalyops_api.logging_config import (
    HANDLER_MARK,
    UVICORN_LOGGERS,
    configure_logging,
    model_version_var,
    request_id_var,
    set_served_version_source,
    valid_request_id,
)
from anomalyops_api.main import create_app
from anomalyops_api.metrics import ApiMetrics
from anomalyops_api.registry import ModelRegistry
from anomalyops_api.settings import ApiSettings
from tests.helpers.api import SPEC, numpy_model

GENERATED = re.compile(r"[0-9a-f]{32}")
JSON_KEYS = {"time", "level", "logger", "message", "request_id", "model_version"}


@pytest.fixture(autouse=True)
def _restore_logging(monkeypatch: pytest.MonkeyPatch):
    import os

    for name in list(os.environ):
        if name.startswith("ANOMALYOPS_API_"):
            monkeypatch.delenv(name)
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if getattr(h, HANDLER_MARK, False)]:
        root.removeHandler(handler)
    root.setLevel(level)
    set_served_version_source(None)


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """What the app's log handler writes: create_app's own configure_logging call, with a
    buffer for sys.stderr (pytest swaps sys.stderr between phases, so it is not patched)."""
    from anomalyops_api import main

    buf = io.StringIO()
    real = main.configure_logging
    monkeypatch.setattr(main, "configure_logging", lambda fmt, level: real(fmt, level, stream=buf))
    return buf


def _app(tmp_path: Path, **overrides) -> TestClient:
    settings = ApiSettings(
        model_dir=tmp_path / "serving", state_dir=tmp_path / "state", **overrides
    )
    app = create_app(settings)

    @app.get("/_log")
    async def _log() -> dict:
        logging.getLogger("anomalyops_api.test").info("inside the request")
        return {}

    @app.get("/_boom")
    async def _boom() -> dict:
        raise RuntimeError("boom")

    return TestClient(app, raise_server_exceptions=False)


def _json_lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_a_json_line_has_the_documented_fields():
    buf = io.StringIO()
    configure_logging("json", "INFO", stream=buf)
    rid, version = request_id_var.set("abc-123"), model_version_var.set(1764230400)
    try:
        logging.getLogger("anomalyops_api.registry").info("serving model version %d", 1764230400)
        try:
            raise ValueError("bad")
        except ValueError:
            logging.getLogger("anomalyops_api.errors").exception("unhandled: ünïcode\nline")
    finally:
        request_id_var.reset(rid)
        model_version_var.reset(version)
    logging.getLogger("anomalyops_api.job_service").debug("below the level")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2, "one line per record, DEBUG filtered out"
    first, second = (json.loads(line) for line in lines)
    assert set(first) == JSON_KEYS
    assert first["level"] == "INFO" and first["logger"] == "anomalyops_api.registry"
    assert first["message"] == "serving model version 1764230400"
    assert first["request_id"] == "abc-123" and first["model_version"] == 1764230400
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", first["time"])
    assert second["level"] == "ERROR" and second["message"] == "unhandled: ünïcode\nline"
    assert "ValueError: bad" in second["exc_info"]
    assert lines[1].isascii()


def test_records_outside_a_request_carry_null_ids_or_the_served_version():
    buf = io.StringIO()
    configure_logging("json", "INFO", stream=buf)
    logging.getLogger("anomalyops_api.main").warning("no model yet")
    set_served_version_source(lambda: 7)
    logging.getLogger("anomalyops_api.main").info("now serving")
    first, second = _json_lines(buf)
    assert (first["request_id"], first["model_version"]) == (None, None)
    assert (second["request_id"], second["model_version"]) == (None, 7)


def test_uvicorn_loggers_go_through_the_same_handler():
    buf = io.StringIO()
    configure_logging("json", "INFO", stream=buf)
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        assert logger.handlers == [] and logger.propagate, name
    access = logging.getLogger("uvicorn.access")
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/healthz", "1.1", 200)
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    line, startup = _json_lines(buf)
    assert line["logger"] == "uvicorn.access"
    assert line["message"] == '127.0.0.1:5000 - "GET /healthz HTTP/1.1" 200'
    assert (line["method"], line["path"], line["status"]) == ("GET", "/healthz", 200)
    assert startup["message"] == "Application startup complete."


def test_configuring_again_does_not_duplicate_lines_and_keeps_foreign_handlers():
    root = logging.getLogger()
    foreign = logging.NullHandler()  # e.g. pytest's capture: not a std stream
    root.addHandler(foreign)
    try:
        buf = io.StringIO()
        configure_logging("text", "INFO", stream=io.StringIO())
        configure_logging("json", "INFO", stream=buf)
        logging.getLogger("anomalyops_api.x").info("once")
        assert len(buf.getvalue().splitlines()) == 1
        assert foreign in root.handlers
        assert sum(getattr(h, HANDLER_MARK, False) for h in root.handlers) == 1
    finally:
        root.removeHandler(foreign)


def test_the_request_id_is_echoed_and_on_every_record_of_the_request(tmp_path, stderr):
    client = _app(tmp_path, log_format="json")
    reply = client.get("/_log", headers={"X-Request-ID": "trace-42.a_b:c"})
    assert reply.status_code == 200
    assert reply.headers["x-request-id"] == "trace-42.a_b:c"
    inside = [r for r in _json_lines(stderr) if r["message"] == "inside the request"]
    assert len(inside) == 1 and inside[0]["request_id"] == "trace-42.a_b:c"
    # Without a header one is generated, different for each request.
    first = client.get("/healthz").headers["x-request-id"]
    second = client.get("/healthz").headers["x-request-id"]
    assert GENERATED.fullmatch(first) and GENERATED.fullmatch(second) and first != second
    assert request_id_var.get() is None, "the id must not leak out of the request"


def test_an_unhandled_error_is_logged_with_the_request_id_and_the_500_echoes_it(tmp_path, stderr):
    client = _app(tmp_path, log_format="json")
    reply = client.get("/_boom", headers={"X-Request-ID": "req-500"})
    assert reply.status_code == 500
    assert reply.headers["x-request-id"] == "req-500"
    errors = [r for r in _json_lines(stderr) if r["level"] == "ERROR"]
    assert errors and errors[0]["request_id"] == "req-500"
    assert "RuntimeError: boom" in errors[0]["exc_info"]


@pytest.mark.parametrize(
    "hostile",
    [
        "x" * 65,  # too long
        "has space",
        'quote"in',
        "<script>",
        "-starts-with-dash",
        "tab\there",
        "semi;colon",
        "%0d%0aInjected: 1",
        b"caf\xc3\xa9",  # non-ASCII bytes
        b"\xff\xfe",
        "",
    ],
)
def test_a_hostile_request_id_is_replaced_and_never_logged(tmp_path, stderr, hostile):
    client = _app(tmp_path, log_format="json")
    reply = client.get("/_log", headers={"X-Request-ID": hostile})
    assert reply.status_code == 200
    echoed = reply.headers["x-request-id"]
    assert GENERATED.fullmatch(echoed)
    output = stderr.getvalue()
    raw = hostile.decode("latin-1") if isinstance(hostile, bytes) else hostile
    if raw:
        assert raw not in output and json.dumps(raw)[1:-1] not in output
    records = _json_lines(stderr)
    assert any("invalid X-Request-ID" in r["message"] for r in records)
    inside = next(r for r in records if r["message"] == "inside the request")
    assert inside["request_id"] == echoed


def test_several_request_ids_are_replaced(tmp_path, stderr):
    client = _app(tmp_path, log_format="json")
    reply = client.get("/healthz", headers=[("X-Request-ID", "one"), ("X-Request-ID", "two")])
    assert GENERATED.fullmatch(reply.headers["x-request-id"])


def test_request_id_rule():
    assert valid_request_id("0f8fad5b-d9cb-469f-a165-70867728950e")
    assert valid_request_id("a" * 64) and not valid_request_id("a" * 65)
    for bad in (None, "", " x", "x\n", "x\r\ny", "é", "a/b", "a b"):
        assert valid_request_id(bad) is None, repr(bad)


def test_text_mode_is_readable_and_the_development_default(tmp_path, stderr):
    client = _app(tmp_path)  # development, no LOG_FORMAT: text
    client.get("/_log", headers={"X-Request-ID": "text-1"})
    logging.getLogger("anomalyops_api.test").warning("a\nforged line\r")
    lines = stderr.getvalue().splitlines()
    inside = next(line for line in lines if line.endswith("inside the request"))
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO anomalyops_api\.test \[rid=text-1\] "
        r"inside the request",
        inside,
    )
    assert not inside.startswith("{")
    assert lines[-1].endswith("WARNING anomalyops_api.test a\\x0aforged line\\x0d")


def test_log_format_defaults_by_environment_and_reads_the_environment(monkeypatch):
    assert ApiSettings().resolved_log_format == "text"
    production = ApiSettings(environment="production", keys=["k" * 16], admin_key="a" * 16)
    assert production.resolved_log_format == "json"
    monkeypatch.setenv("ANOMALYOPS_API_LOG_FORMAT", "TEXT")
    monkeypatch.setenv("ANOMALYOPS_API_LOG_LEVEL", "warning")
    settings = ApiSettings()
    assert (settings.resolved_log_format, settings.log_level) == ("text", "WARNING")
    monkeypatch.setenv("ANOMALYOPS_API_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        ApiSettings()


def test_a_model_swap_is_logged_at_info_with_the_new_version(tmp_path):
    buf = io.StringIO()
    configure_logging("json", "INFO", stream=buf)
    version = 1764230400
    path = tmp_path / str(version)
    (path / "variables").mkdir(parents=True)
    (path / "variables" / "variables.index").write_bytes(b"idx")
    (path / "saved_model.pb").write_bytes(b"ok")
    (path / "anomalyops_model.json").write_text(json.dumps(metadata(SPEC, version, threshold=3)))
    registry = ModelRegistry(tmp_path, loader=lambda _p, v: numpy_model(v), metrics=ApiMetrics())
    set_served_version_source(lambda: registry.active.version if registry.active else None)
    registry.refresh()
    swaps = [r for r in _json_lines(buf) if r["message"].startswith("serving model version")]
    assert len(swaps) == 1
    assert swaps[0]["level"] == "INFO" and swaps[0]["model_version"] == version


def test_metrics_include_process_and_platform_collectors(tmp_path):
    client = _app(tmp_path)
    client.get("/healthz")
    text = client.get("/metrics").text
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        "python_info",
        "anomalyops_api_requests_total",
    ):
        assert re.search(rf"^{name}[{{ ]", text, re.MULTILINE), name
