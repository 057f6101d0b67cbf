"""Serving durability: a pinned version that vanished while the service was down does not
leave it without a model (503 forever); the broken pin is reported over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from anomalyops_api import registry as registry_module
from anomalyops_api.demo_model import metadata
from tests.helpers.api import ADMIN_KEY, KEY, SPEC, api_settings, numpy_model


def _version(serving: Path, version: int) -> None:
    """Complete by the contract's file check; loaded by the numpy stand-in below."""
    path = serving / str(version)
    (path / "variables").mkdir(parents=True)
    (path / "variables" / "variables.index").write_bytes(b"idx")
    (path / "saved_model.pb").write_bytes(b"pb")
    (path / "anomalyops_model.json").write_text(json.dumps(metadata(SPEC, version, threshold=3.0)))


def test_a_vanished_pin_falls_back_and_is_reported(tmp_path, monkeypatch):
    from anomalyops_api.main import PIN_FILE, create_app

    monkeypatch.setattr(
        registry_module, "load_model", lambda path, version, **kw: numpy_model(version)
    )
    for v in (1, 2):
        _version(tmp_path / "serving", v)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / PIN_FILE).write_text(json.dumps({"version": 5}))  # pinned, then deleted
    settings = api_settings(tmp_path, keys=[KEY], admin_key=ADMIN_KEY, environment="production")
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["model_version"] == 2
        assert "pinned version 5 is not on disk" in ready.json()["detail"]
        models = client.get("/v1/models", headers={"X-API-Key": KEY}).json()
        assert models["active_version"] == 2 and models["pinned_version"] == 5
        assert "serving the newest loadable version instead" in models["pin_error"]
        assert "anomalyops_api_model_pin_broken 1.0" in client.get("/metrics").text
        unpinned = client.post("/admin/unpin", headers={"X-API-Key": ADMIN_KEY})
        assert unpinned.status_code == 200, unpinned.text
        assert client.get("/readyz").json()["detail"] is None
        assert client.get("/v1/models", headers={"X-API-Key": KEY}).json()["pin_error"] is None
        assert "anomalyops_api_model_pin_broken 0.0" in client.get("/metrics").text
