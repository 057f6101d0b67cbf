"""Parquet files that used to run code or crash the reader get a 4xx naming the problem."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from anomalyops_api.errors import ApiError
from anomalyops_api.scoring import InputFormat, OutputFormat, check_columns, score_file
from tests.helpers.api import FEATURES, make_frame, numpy_model


def write_pickled_extension_parquet(path: Path, marker: Path) -> None:
    """A valid frame plus a column whose type is a pickle that runs ``touch marker``.

    Written in a child process so this test process never defines the malicious type."""
    code = textwrap.dedent(
        f"""
        import os, pyarrow as pa, pyarrow.parquet as pq
        class Evil(pa.PyExtensionType):
            def __init__(self):
                super().__init__(pa.int64())
            def __reduce__(self):
                return (os.system, ("touch {marker}",))
        table = pq.read_table({str(path)!r})
        column = pa.ExtensionArray.from_storage(Evil(), pa.array(range(table.num_rows)))
        pq.write_table(table.append_column("payload", column), {str(path)!r})
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pickled_extension_type_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    src, marker = tmp_path / "input", tmp_path / "MARKER"
    make_frame(20).to_parquet(src, index=False)
    write_pickled_extension_parquet(src, marker)
    model = numpy_model()
    with pytest.raises(ApiError) as job_check:
        check_columns(src, InputFormat.PARQUET, model)
    with pytest.raises(ApiError) as scored:
        score_file(src, InputFormat.PARQUET, model, tmp_path / "out.csv", OutputFormat.CSV)
    for caught in (job_check.value, scored.value):
        assert caught.status_code == 422
        assert "arrow.py_extension_type" in caught.detail
        assert "CVE-2023-47248" in caught.detail
        assert "posix" not in caught.detail  # the pickle is not echoed back
    assert not marker.exists()
    assert not os.path.exists("MARKER")


def test_struct_key_column_is_422_naming_it(tmp_path: Path) -> None:
    frame = make_frame(10)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    station = pa.array([{"id": i, "site": "a"} for i in range(10)])
    table = table.set_column(table.schema.get_field_index("station_id"), "station_id", station)
    src = tmp_path / "input"
    pq.write_table(table, src)
    with pytest.raises(ApiError) as caught:
        score_file(src, InputFormat.PARQUET, numpy_model(), tmp_path / "o.csv", OutputFormat.CSV)
    assert caught.value.status_code == 422
    assert caught.value.extra["column"] == "station_id"
    assert "struct" in caught.value.detail


@pytest.mark.parametrize(
    "column",
    [pa.array([[1.0, 2.0]] * 10), pa.array([{"x": 1.0}] * 10)],
    ids=["list", "struct"],
)
def test_nested_feature_column_is_422(tmp_path: Path, column: pa.Array) -> None:
    table = pa.Table.from_pandas(make_frame(10), preserve_index=False)
    name = FEATURES[0]
    table = table.set_column(table.schema.get_field_index(name), name, column)
    src = tmp_path / "input"
    pq.write_table(table, src)
    with pytest.raises(ApiError) as caught:
        score_file(src, InputFormat.PARQUET, numpy_model(), tmp_path / "o.csv", OutputFormat.CSV)
    assert caught.value.status_code == 422
    assert caught.value.extra["column"] == name


def test_categorical_keys_still_score(tmp_path: Path) -> None:
    frame = make_frame(10)
    frame["station_id"] = frame["station_id"].astype("category")
    src = tmp_path / "input"
    frame.to_parquet(src, index=False)
    result = score_file(
        src, InputFormat.PARQUET, numpy_model(), tmp_path / "o.csv", OutputFormat.CSV
    )
    assert result.rows == 10
