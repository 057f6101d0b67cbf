"""The schema check's executor on real TFDV output for the curated schema."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from anomalyops.settings import Settings
from anomalyops.sources.simulator import SimulatorConfig, simulate_day
from anomalyops.spec import load_spec
from anomalyops_tfx.pipeline import default_schema_path


def _run_gate(tmp_path, frame, schema_file, allowed=()):
    import tensorflow_data_validation as tfdv
    from tfx.types import artifact_utils, standard_artifacts

    from anomalyops_tfx.components.artifacts import SchemaCheckResult
    from anomalyops_tfx.components.schema_check.executor import ANOMALIES_FILE, Executor

    spec = load_spec(Settings().feature_spec_path)
    frame = frame.copy()
    ts = spec.timestamp.column
    frame[ts] = frame[ts].values.astype("datetime64[us]").astype("int64")  # as ExampleGen does
    anomalies = tfdv.validate_statistics(
        tfdv.generate_statistics_from_dataframe(frame), tfdv.load_schema_text(str(schema_file))
    )
    artifact = standard_artifacts.ExampleAnomalies()
    artifact.uri = str(tmp_path / "anomalies")
    artifact.split_names = artifact_utils.encode_split_names(["train", "eval"])
    for split in ("train", "eval"):
        path = tmp_path / "anomalies" / f"Split-{split}"
        path.mkdir(parents=True)
        (path / ANOMALIES_FILE).write_bytes(anomalies.SerializeToString())
    result = SchemaCheckResult()
    result.uri = str(tmp_path / "result")
    (tmp_path / "result").mkdir()
    Executor().Do(
        {"anomalies": [artifact]},
        {"result": [result]},
        {"allowed_anomaly_types": json.dumps(list(allowed))},
    )
    return json.loads((tmp_path / "result" / "schema_check.json").read_text())


@pytest.fixture(scope="module")
def schema_file():
    settings = Settings()
    path = default_schema_path(settings)
    if not path.exists():
        pytest.skip(f"no curated schema at {path}")
    return path


def _day():
    spec = load_spec(Settings().feature_spec_path)
    return spec, simulate_day(spec, dt.date(2026, 11, 1), SimulatorConfig(rows_per_day=288))


def test_clean_day_passes(tmp_path, schema_file):
    _, frame = _day()
    assert _run_gate(tmp_path, frame, schema_file)["splits"] == ["eval", "train"]


def test_out_of_range_day_fails_naming_the_feature(tmp_path, schema_file):
    from anomalyops_tfx.components.schema_check.logic import DataAnomaliesError

    spec, frame = _day()
    victim = spec.feature_names[0]
    frame.loc[:10, victim] = spec.feature(victim).max * 10
    with pytest.raises(DataAnomaliesError, match=victim):
        _run_gate(tmp_path, frame, schema_file)


def test_new_column_can_be_allowed(tmp_path, schema_file):
    from anomalyops_tfx.components.schema_check.logic import DataAnomaliesError

    _, frame = _day()
    frame["extra_sensor"] = 1.0
    with pytest.raises(DataAnomaliesError, match="extra_sensor"):
        _run_gate(tmp_path / "a", frame, schema_file)
    report = _run_gate(tmp_path / "b", frame, schema_file, allowed=["SCHEMA_NEW_COLUMN"])
    assert any("extra_sensor" in a for a in report["allowed"])
