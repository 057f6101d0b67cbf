"""Lake Parquet rows become typed tf.Examples; incomplete partitions are refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from anomalyops_tfx.components.lake_example_gen import logic


def test_rows_become_typed_examples_with_nulls_missing():
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2026-11-01T00:00:00Z", "2026-11-01T00:01:00.5Z"]),
            "station_id": ["s-1", None],
            "flow": [1.5, np.nan],
            "is_anomaly": np.array([0, 1], dtype="int8"),
        }
    )
    first, second = logic.table_to_examples(pa.Table.from_pandas(frame, preserve_index=False))
    f = first.features.feature
    assert f["timestamp"].int64_list.value == [1793491200000000]
    assert f["station_id"].bytes_list.value == [b"s-1"]
    assert f["flow"].float_list.value == [1.5]
    assert f["is_anomaly"].int64_list.value == [0]
    g = second.features.feature
    assert g["timestamp"].int64_list.value == [1793491260500000]
    assert "station_id" not in g and "flow" not in g  # null / NaN -> missing


def test_unknown_columns_requested_are_named():
    table = pa.table({"a": [1.0]})
    with pytest.raises(ValueError, match=r"\['b'\]"):
        list(logic.table_to_examples(table, ["a", "b"]))


def test_partitions_need_success_marker(tmp_path):
    done, partial = tmp_path / "ds=2026-11-01", tmp_path / "ds=2026-11-02"
    for d in (done, partial):
        d.mkdir()
        (d / "part-00000.parquet").write_bytes(b"x")
    (done / logic.SUCCESS).write_text("")
    assert logic.check_partitions_complete([str(done / "part-00000.parquet")]) == [str(done)]
    with pytest.raises(RuntimeError, match="ds=2026-11-02"):
        logic.check_partitions_complete([str(p / "part-00000.parquet") for p in (done, partial)])
    with pytest.raises(FileNotFoundError):
        logic.check_partitions_complete([])


def test_drift_score_of_a_day_comes_from_the_gates_report(tmp_path):
    import datetime as dt
    import json

    from anomalyops.lake import Lake
    from anomalyops.validation import report
    from anomalyops_tfx.components.lake_example_gen.executor import drift_score_of_day

    lake = Lake(str(tmp_path))
    day = dt.date(2026, 11, 2)
    assert drift_score_of_day(str(tmp_path), day) is None  # no report: no score
    scores = {"scores": [{"feature": "flow", "value": 0.4}, {"feature": "rpm", "value": 0.9}]}
    report.write_report(lake, day, {report.DRIFT_JSON: json.dumps(scores).encode()}, meta={})
    assert drift_score_of_day(str(tmp_path), day) == pytest.approx(0.9)
    report.write_report(lake, day, {report.DRIFT_JSON: b"{not json"}, meta={})
    with pytest.raises(ValueError, match=r"drift\.json is not valid JSON"):
        drift_score_of_day(str(tmp_path), day)
