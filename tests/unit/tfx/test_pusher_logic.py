"""The pusher's version numbering and retention (the publish itself: test_model_contract.py)."""

from __future__ import annotations

import os

import pytest

from anomalyops_tfx.components.pusher import logic


def _fake_model(path):
    (path / "variables").mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"pb")
    (path / "variables" / "variables.index").write_bytes(b"idx")


def test_version_is_unix_seconds_and_strictly_increasing(tmp_path):
    assert logic.next_version(tmp_path / "missing", 1_700_000_000.7) == 1_700_000_000
    (tmp_path / "1800000000").mkdir()
    (tmp_path / ".tmp-1900000000").mkdir()  # temp dirs are not versions
    (tmp_path / "notes").mkdir()
    assert logic.existing_versions(tmp_path) == [1800000000]
    assert logic.next_version(tmp_path, 1_700_000_000) == 1_800_000_001


def test_only_ascii_digit_names_are_versions(tmp_path):
    for name in ("12", "\u0663", "\u00b2", "7\n", "0x1f", "-3"):
        (tmp_path / name).mkdir()
    assert logic.existing_versions(tmp_path) == [12]
    assert logic.next_version(tmp_path, 5) == 13
    assert not logic.is_version_name("\u0663") and not logic.is_version_name("7\n")


def test_retention_keeps_the_newest_and_the_protected_versions(tmp_path):
    for v in range(1, 8):
        _fake_model(tmp_path / str(v))
    (tmp_path / ".tmp-99-old").mkdir()
    (tmp_path / ".tmp-99-live").mkdir()
    (tmp_path / ".trash-1-crashed").mkdir()
    old = 1_000_000.0
    os.utime(tmp_path / ".tmp-99-old", (old, old))
    removed = logic.prune_versions(tmp_path, keep=3, protected={2}, stale_tmp_s=3600)
    assert removed == [1, 3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-99-live", "2", "5", "6", "7"]
    assert logic.prune_versions(tmp_path, keep=3, protected={2}) == []
    with pytest.raises(ValueError, match="at least 1"):
        logic.prune_versions(tmp_path, keep=0)


def test_retention_asks_the_api_and_deletes_nothing_when_it_cannot(tmp_path, monkeypatch):
    from anomalyops.settings import get_settings

    for v in range(1, 6):
        _fake_model(tmp_path / str(v))
    monkeypatch.setenv("ANOMALYOPS_SERVING_KEEP_VERSIONS", "2")
    monkeypatch.setenv("ANOMALYOPS_API_URL", "http://127.0.0.1:9")
    get_settings.cache_clear()
    try:
        calls = []

        def in_use(url, *, admin_key):
            calls.append(url)
            raise OSError("connection refused")

        monkeypatch.setattr(logic, "versions_in_use", in_use)
        assert logic.apply_retention(tmp_path, 5) == [] and calls
        assert logic.existing_versions(tmp_path) == [1, 2, 3, 4, 5]
        monkeypatch.setattr(logic, "versions_in_use", lambda url, *, admin_key: {1})  # pinned 1
        assert logic.apply_retention(tmp_path, 5) == [2, 3]
        assert logic.existing_versions(tmp_path) == [1, 4, 5]
    finally:
        get_settings.cache_clear()


def test_versions_in_use_reads_the_api_listing():
    import httpx

    def handler(request):
        assert request.url.path == "/v1/models" and request.headers["X-API-Key"] == "k"
        return httpx.Response(200, json={"active_version": 7, "pinned_version": 3, "versions": [
            {"version": 9, "state": "failed"}, {"version": 7, "state": "serving"}]})  # fmt: skip

    client = httpx.Client(transport=httpx.MockTransport(handler))
    assert logic.versions_in_use("http://api/", admin_key="k", client=client) == {3, 7}
    refuse = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(401)))
    with pytest.raises(httpx.HTTPStatusError):
        logic.versions_in_use("http://api", admin_key="bad", client=refuse)
