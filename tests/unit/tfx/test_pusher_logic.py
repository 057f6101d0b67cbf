"""The atomic pusher's versioning, metadata and temp-dir-then-rename publish."""

from __future__ import annotations

import datetime as dt
import json

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
        seen.append(path.name)
        _fake_model(path)

    final = logic.publish(tmp_path, 42, write, {"version": 42})
    assert seen == [".tmp-42"]
    assert final == tmp_path / "42"
    assert json.loads((final / logic.METADATA_FILE).read_text()) == {"version": 42}
    assert (final / "saved_model.pb").exists()
    assert not (tmp_path / ".tmp-42").exists()


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


def test_existing_version_is_never_overwritten_and_stale_temp_is_replaced(tmp_path):
    (tmp_path / "5").mkdir()
    with pytest.raises(logic.PushError, match="already exists"):
        logic.publish(tmp_path, 5, _fake_model, {})
    (tmp_path / ".tmp-6").mkdir()
    (tmp_path / ".tmp-6" / "junk").write_text("x")
    final = logic.publish(tmp_path, 6, _fake_model, {})
    assert not (final / "junk").exists()


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
