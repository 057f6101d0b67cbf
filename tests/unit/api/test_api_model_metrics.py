"""Per-version model metrics in /metrics: what each served version promised (threshold,
calibrated alarm rate, the evaluation gate's metrics) and how long a push took to be served."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from anomalyops_api.demo_model import metadata
from anomalyops_api.main import create_app
from anomalyops_api.metrics import MAX_MODEL_VERSIONS, ApiMetrics
from anomalyops_api.model import ModelMetadata, read_metadata
from anomalyops_api.registry import ModelRegistry
from anomalyops_api.settings import ApiSettings
from tests.helpers.api import SPEC, numpy_model

UTC = dt.timezone.utc


def _meta(version: int, *, threshold: float = 3.0, **overrides) -> ModelMetadata:
    return ModelMetadata.model_validate(metadata(SPEC, version, threshold=threshold, **overrides))


def _value(metrics: ApiMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def test_a_served_version_exposes_what_it_promised():
    metrics = ApiMetrics()
    meta = _meta(
        7,
        threshold=2.5,
        threshold_quantile=0.98,
        metrics={"auc_pr": 0.61, "f1": 0.5, "false_alarm_rate": 0.02, "missed_alarm_rate": None},
    )
    metrics.model_served(meta, 7, dt.datetime.now(UTC))
    assert _value(metrics, "anomalyops_api_model_threshold", version="7") == 2.5
    assert _value(metrics, "anomalyops_api_model_calibrated_alarm_rate", version="7") == (
        pytest.approx(0.02)
    )
    evals = {
        m: _value(metrics, "anomalyops_api_model_eval_metric", version="7", metric=m)
        for m in ("auc_pr", "f1", "false_alarm_rate", "missed_alarm_rate")
    }
    # A metric evaluation could not compute (None) is absent, not 0.
    assert evals == {"auc_pr": 0.61, "f1": 0.5, "false_alarm_rate": 0.02, "missed_alarm_rate": None}
    assert _value(metrics, "anomalyops_api_model_served_timestamp_seconds", version="7") > 0


def test_eval_metric_labels_are_only_the_contracts_names():
    metrics = ApiMetrics()
    metrics.model_served(
        _meta(1, metrics={"auc_pr": 0.5, "surprise": 1.0}), 1, dt.datetime.now(UTC)
    )
    text = _exposition(metrics)
    assert 'metric="auc_pr"' in text and "surprise" not in text


def test_push_to_served_latency_of_a_version_pushed_while_running():
    metrics = ApiMetrics()
    pushed = metrics.started_at.replace(microsecond=0) + dt.timedelta(seconds=5)
    served = pushed + dt.timedelta(seconds=2.5)
    metrics.model_served(_meta(42, created_at=_iso(pushed)), 42, served)
    assert _value(metrics, "anomalyops_api_model_push_to_served_seconds", version="42") == 2.5
    assert _value(metrics, "anomalyops_api_push_to_served_seconds_count") == 1
    assert _value(metrics, "anomalyops_api_push_to_served_seconds_sum") == 2.5
    assert _value(metrics, "anomalyops_api_push_to_served_seconds_bucket", le="5.0") == 1
    assert _value(metrics, "anomalyops_api_push_to_served_seconds_bucket", le="2.0") == 0
    assert _value(metrics, "anomalyops_api_model_pushed_timestamp_seconds", version="42") == (
        pushed.timestamp()
    )


def test_a_version_on_disk_before_start_up_is_not_a_push_latency():
    """The API was not running, so the gap measures downtime, not the reload."""
    metrics = ApiMetrics()
    pushed = metrics.started_at - dt.timedelta(days=3)
    metrics.model_served(_meta(3, created_at=_iso(pushed)), 3, dt.datetime.now(UTC))
    assert _value(metrics, "anomalyops_api_model_push_to_served_seconds", version="3") is None
    assert _value(metrics, "anomalyops_api_push_to_served_seconds_count") == 0
    # What it promised is still there, and when it was pushed.
    assert _value(metrics, "anomalyops_api_model_threshold", version="3") == 3.0
    assert _value(metrics, "anomalyops_api_model_pushed_timestamp_seconds", version="3") == (
        pushed.replace(microsecond=0).timestamp()
    )


def test_a_version_served_again_is_not_measured_twice():
    metrics = ApiMetrics()
    pushed = metrics.started_at.replace(microsecond=0) + dt.timedelta(seconds=1)
    meta = _meta(5, created_at=_iso(pushed))
    metrics.model_served(meta, 5, pushed + dt.timedelta(seconds=1))
    metrics.model_served(_meta(6, created_at=_iso(pushed)), 6, pushed + dt.timedelta(seconds=2))
    metrics.model_served(meta, 5, pushed + dt.timedelta(hours=2))  # rolled back to 5
    assert _value(metrics, "anomalyops_api_push_to_served_seconds_count") == 2
    assert _value(metrics, "anomalyops_api_model_push_to_served_seconds", version="5") == 1.0


def test_missing_or_unparsable_created_at_records_no_latency():
    metrics = ApiMetrics()
    metrics.model_served(_meta(8, created_at=None), 8, dt.datetime.now(UTC))
    metrics.model_served(_meta(9, created_at="yesterday"), 9, dt.datetime.now(UTC))
    assert _value(metrics, "anomalyops_api_push_to_served_seconds_count") == 0
    assert _value(metrics, "anomalyops_api_model_pushed_timestamp_seconds", version="8") is None
    assert _value(metrics, "anomalyops_api_model_threshold", version="9") == 3.0


def test_per_version_labels_are_bounded():
    metrics = ApiMetrics()
    now = dt.datetime.now(UTC)
    for version in range(1, MAX_MODEL_VERSIONS + 3):
        metrics.model_served(_meta(version), version, now)
    assert _value(metrics, "anomalyops_api_model_threshold", version="1") is None
    assert _value(metrics, "anomalyops_api_model_threshold", version="2") is None
    assert _value(metrics, "anomalyops_api_model_eval_metric", version="1", metric="f1") is None
    newest = str(MAX_MODEL_VERSIONS + 2)
    assert _value(metrics, "anomalyops_api_model_threshold", version=newest) == 3.0
    assert _exposition(metrics).count("anomalyops_api_model_threshold{") == MAX_MODEL_VERSIONS


def _write_version(root: Path, version: int, created_at: dt.datetime) -> None:
    path = root / str(version)
    (path / "variables").mkdir(parents=True)
    (path / "variables" / "variables.index").write_bytes(b"idx")
    (path / "saved_model.pb").write_bytes(b"ok")
    meta = metadata(SPEC, version, threshold=3.0, created_at=_iso(created_at))
    (path / "anomalyops_model.json").write_text(json.dumps(meta))


def _loader(path: Path, version: int):
    """numpy maths, the version directory's own metadata (as load_model reads it)."""
    return dataclasses.replace(numpy_model(version), metadata=read_metadata(path))


def test_the_registry_records_a_hot_reload(tmp_path):
    metrics = ApiMetrics()
    registry = ModelRegistry(tmp_path, loader=_loader, metrics=metrics)
    _write_version(tmp_path, 1, metrics.started_at - dt.timedelta(hours=1))
    registry.refresh()
    assert _value(metrics, "anomalyops_api_push_to_served_seconds_count") == 0
    _write_version(tmp_path, 2, dt.datetime.now(UTC))
    registry.refresh()
    assert registry.active.version == 2
    latency = _value(metrics, "anomalyops_api_model_push_to_served_seconds", version="2")
    assert latency is not None and 0 <= latency < 60
    assert _value(metrics, "anomalyops_api_push_to_served_seconds_count") == 1
    assert _value(metrics, "anomalyops_api_model_eval_metric", version="2", metric="auc_pr") == 0.8


def test_the_metrics_route_exposes_the_model_metrics(tmp_path):
    from fastapi.testclient import TestClient

    from tests.helpers.api import publish

    model_dir = tmp_path / "serving"
    publish(model_dir, 11)
    app = create_app(ApiSettings(model_dir=model_dir, state_dir=tmp_path / "state"))
    with TestClient(app) as client:
        client.get("/readyz")
        text = client.get("/metrics").text
    assert 'anomalyops_api_model_threshold{version="11"} 3.0' in text
    assert 'anomalyops_api_model_calibrated_alarm_rate{version="11"}' in text
    assert "anomalyops_api_push_to_served_seconds_bucket" in text


def _exposition(metrics: ApiMetrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()
