"""The schema check fails on ExampleValidator anomalies, naming feature and description."""

from __future__ import annotations

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2

from anomalyops_tfx.components.schema_check import logic

T = anomalies_pb2.AnomalyInfo.Type


def _anomalies(**features: list[int]) -> anomalies_pb2.Anomalies:
    out = anomalies_pb2.Anomalies()
    for name, types in features.items():
        info = out.anomaly_info[name]
        info.description = f"{name} looks wrong"
        info.short_description = "wrong"
        for t in types:
            info.reason.add(type=t, short_description="x", description="y")
    return out


def test_no_anomalies_pass():
    assert (
        logic.check({"train": anomalies_pb2.Anomalies(), "eval": anomalies_pb2.Anomalies()}) == []
    )


def test_anomalies_fail_with_feature_and_description():
    found = {
        "train": _anomalies(vibration=[T.FLOAT_TYPE_HAS_NAN]),
        "eval": anomalies_pb2.Anomalies(),
    }
    with pytest.raises(logic.DataAnomaliesError) as err:
        logic.check(found)
    message = str(err.value)
    assert "vibration" in message and "vibration looks wrong" in message
    assert "FLOAT_TYPE_HAS_NAN" in message and "[train]" in message


def test_allow_list_lets_listed_types_through_only():
    found = {
        "train": _anomalies(extra=[T.SCHEMA_NEW_COLUMN], vibration=[T.FLOAT_TYPE_HAS_NAN]),
    }
    with pytest.raises(logic.DataAnomaliesError) as err:
        logic.check(found, ["SCHEMA_NEW_COLUMN"])
    assert "vibration" in str(err.value) and "extra" not in str(err.value)
    tolerated = logic.check(
        {"train": _anomalies(extra=[T.SCHEMA_NEW_COLUMN])}, ["SCHEMA_NEW_COLUMN"]
    )
    assert [f.feature for f in tolerated] == ["extra"]


def test_dataset_level_anomalies_count():
    found = anomalies_pb2.Anomalies()
    found.dataset_anomaly_info.description = "too few rows"
    found.dataset_anomaly_info.reason.add(type=T.DATASET_LOW_NUM_EXAMPLES)
    with pytest.raises(logic.DataAnomaliesError, match="too few rows"):
        logic.check({"train": found})
