"""The atomic pusher's versioning, metadata and temp-dir-then-rename publish."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from anomalyops_tfx.components.pusher import logic

pytestmark = pytest.mark.unit


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


def test_publish_writes_temp_then_renames(tmp_path):
    seen = []

    def write(path):
        seen.append(path)
        _fake_model(path)

    final = logic.publish(tmp_path, 42, write, {"version": 42})
    assert seen[0].parent.parent == tmp_path and seen[0].parent.name.startswith(".tmp-42-")
    assert final == tmp_path / "42"
    assert json.loads((final / logic.METADATA_FILE).read_text()) == {"version": 42}
    assert (final / "saved_model.pb").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["42"]  # the temp dir is gone


def test_failed_write_leaves_nothing_behind(tmp_path):
    def write(path):
        path.mkdir()
        (path / "half").write_text("x")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        logic.publish(tmp_path, 7, write, {})
    assert list(tmp_path.iterdir()) == []


def test_writer_without_saved_model_is_refused(tmp_path):
    with pytest.raises(logic.PushError, match=r"saved_model\.pb"):
        logic.publish(tmp_path, 7, lambda p: p.mkdir(), {})
    assert list(tmp_path.iterdir()) == []


def test_existing_version_is_never_overwritten_the_next_free_number_is_taken(tmp_path):
    (tmp_path / "5").mkdir()
    (tmp_path / "5" / "saved_model.pb").write_bytes(b"old")
    (tmp_path / ".tmp-6").mkdir()  # an old-style leftover with the next number
    (tmp_path / ".tmp-6" / "junk").write_text("x")
    final = logic.publish(tmp_path, 5, _fake_model, {"version": 5, "model_name": "m"})
    assert final == tmp_path / "6"
    assert json.loads((final / logic.METADATA_FILE).read_text()) == {
        "version": 6,
        "model_name": "m",
    }
    assert (tmp_path / "5" / "saved_model.pb").read_bytes() == b"old"
    assert not (final / "junk").exists()


def test_two_pushes_in_the_same_second_get_two_versions(tmp_path):
    import threading

    barrier = threading.Barrier(2)
    finals, errors = [], []

    def slow_model(path):
        _fake_model(path)
        barrier.wait(timeout=10)  # both are mid-write at once, with the same version number

    def push(tag):
        try:
            finals.append(logic.publish(tmp_path, 1_764_000_000, slow_model, {"tag": tag}))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(f.name for f in finals) == ["1764000000", "1764000001"]
    for final in finals:
        meta = json.loads((final / logic.METADATA_FILE).read_text())
        assert meta["version"] == int(final.name)
        assert (final / "variables" / "variables.index").exists()
    assert {
        meta["tag"] for meta in (json.loads((f / logic.METADATA_FILE).read_text()) for f in finals)
    } == {"a", "b"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1764000000", "1764000001"]


def test_a_rename_race_lost_to_another_push_takes_the_next_number(tmp_path, monkeypatch):
    real_rename = logic.os.rename

    def rename(src, dst):
        if Path(dst).name == "9" and not Path(dst).exists():
            # Another process wins version 9 between our check and our rename.
            (Path(dst) / "variables").mkdir(parents=True)
            (Path(dst) / "saved_model.pb").write_bytes(b"theirs")
        return real_rename(src, dst)

    monkeypatch.setattr(logic.os, "rename", rename)
    final = logic.publish(tmp_path, 9, _fake_model, {"version": 9})
    assert final.name == "10" and (tmp_path / "9" / "saved_model.pb").read_bytes() == b"theirs"


def test_the_serving_dir_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_rename, real_fsync_dir = logic.os.rename, logic.fsync_dir
    monkeypatch.setattr(
        logic.os, "rename", lambda a, b: (events.append(("rename", Path(b))), real_rename(a, b))
    )
    monkeypatch.setattr(
        logic, "fsync_dir", lambda p: (events.append(("fsync", Path(p))), real_fsync_dir(p))
    )
    final = logic.publish(tmp_path, 3, _fake_model, {})
    assert events.index(("rename", final)) < events.index(("fsync", tmp_path))
    # The model's own files were flushed before the rename made them visible.
    assert any(
        kind == "fsync" and p.name == "variables"
        for kind, p in events[: events.index(("rename", final))]
    )


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


def test_metadata_follows_the_contract():
    meta = logic.build_metadata(
        model_name="anomaly_detector",
        version=1764230400,
        created_at=dt.datetime(2026, 11, 27, 9, tzinfo=dt.timezone.utc),
        training_spans=["2026-11-13", "2026-11-26"],
        threshold=3.71,
        threshold_quantile=0.99,
        metrics={"auc_pr": 0.8, "f1": 0.7, "false_alarm_rate": 0.01, "missed_alarm_rate": 0.3,
                 "mean_score": 1.2},
        feature_spec={"name": "x"},
        feature_spec_fingerprint="abc",
        pipeline_run_id="run-1",
    )  # fmt: skip
    assert meta["created_at"] == "2026-11-27T09:00:00+00:00"
    assert meta["metrics"] == {
        "auc_pr": 0.8, "f1": 0.7, "false_alarm_rate": 0.01, "missed_alarm_rate": 0.3
    }  # fmt: skip
    assert list(meta) == [
        "model_name", "version", "created_at", "training_spans", "threshold",
        "threshold_quantile", "metrics", "feature_spec", "feature_spec_fingerprint",
        "pipeline_run_id",
    ]  # fmt: skip


def test_metrics_are_empty_without_labels():
    assert logic.contract_metrics({"mean_score": 1.0, "alarm_rate": 0.01}) == {}
    assert logic.contract_metrics({"auc_pr": float("nan"), "f1": 0.0}) == {}


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


def test_the_evaluation_report_is_pushed_with_the_model_and_named_in_the_metadata(tmp_path):
    report = b"<!DOCTYPE html><html><body>BLESSED</body></html>"
    meta = logic.build_metadata(
        model_name="anomaly_detector",
        version=9,
        created_at=dt.datetime(2026, 11, 27, 9, tzinfo=dt.timezone.utc),
        training_spans=["2026-11-13", "2026-11-26"],
        threshold=3.71,
        threshold_quantile=0.99,
        metrics={},
        feature_spec={"name": "x"},
        feature_spec_fingerprint="abc",
        pipeline_run_id=None,
        evaluation_report="evaluation_report.html",
    )
    seen_in_temp = []

    def write(path):
        _fake_model(path)
        seen_in_temp.append(path)

    final = logic.publish(tmp_path, 9, write, meta, files={"evaluation_report.html": report})
    written = json.loads((final / logic.METADATA_FILE).read_text())
    assert written["evaluation_report"] == "evaluation_report.html"
    # Relative to the version directory, and there with the model from the first moment.
    assert (final / written["evaluation_report"]).read_bytes() == report
    assert not seen_in_temp[0].exists()  # it travelled with the rename


@pytest.mark.parametrize(
    "name", ["../escape.html", "sub/report.html", "", "..", "saved_model.pb", logic.METADATA_FILE]
)
def test_extra_files_cannot_leave_the_version_dir_or_replace_model_files(tmp_path, name):
    with pytest.raises(logic.PushError, match="refusing extra file name"):
        logic.publish(tmp_path / "serving", 3, _fake_model, {}, files={name: b"x"})
    assert list((tmp_path / "serving").iterdir()) == []
    assert not (tmp_path / "escape.html").exists()
