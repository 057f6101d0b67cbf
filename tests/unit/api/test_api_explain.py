"""``explain=k``: each flagged row's top contributing features, in CSV and JSON replies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anomalyops_api.errors import ApiError
from anomalyops_api.explain import as_csv_cells, top_features
from anomalyops_api.scoring import InputFormat, OutputFormat, score_file
from tests.helpers.api import FEATURES, csv_bytes, make_frame, numpy_model, read_csv_reply


def test_top_features_names_the_largest_shares_of_flagged_rows_only():
    contributions = np.array([[0.1, 3.0, 0.5], [2.0, 0.1, 0.2], [9.0, 9.0, 9.0]])
    flags = np.array([True, False, True])
    got = top_features(contributions, flags, ["a", "b", "c"], 2)
    assert got[0] == [("b", 3.0), ("c", 0.5)]
    assert got[1] is None
    assert [n for n, _ in got[2]] == ["a", "b"]  # ties keep the spec's order
    assert top_features(contributions, flags, ["a", "b", "c"], 10)[0][-1] == ("a", 0.1)
    assert as_csv_cells(got) == ["b=3;c=0.5", None, "a=9;b=9"]


def _frame_with_a_spike(feature: str):
    frame = make_frame(300, seed=3)
    frame.loc[7, feature] = frame[feature].max() * 50  # far out in one feature
    return frame


def _score(tmp_path: Path, frame, out: OutputFormat, explain: int, model=None):
    src = tmp_path / "in.csv"
    src.write_bytes(csv_bytes(frame))
    dest = tmp_path / f"out.{out.value}"
    model = model or numpy_model(3, threshold=3.0)
    score_file(src, InputFormat.CSV, model, dest, out, explain=explain)
    return dest.read_bytes()


def test_csv_reply_names_the_spiked_feature_first(tmp_path: Path):
    feature = FEATURES[2]
    reply = read_csv_reply(_score(tmp_path, _frame_with_a_spike(feature), OutputFormat.CSV, 2))
    assert "top_features" in reply.columns
    spiked = reply.loc[7]
    assert bool(spiked["is_anomaly"])
    first = spiked["top_features"].split(";")[0]
    assert first.startswith(f"{feature}=")
    assert len(spiked["top_features"].split(";")) == 2
    # Rows not flagged carry no explanation.
    assert reply.loc[~reply["is_anomaly"].astype(bool), "top_features"].isna().all()


def test_json_reply_lists_feature_and_contribution(tmp_path: Path):
    feature = FEATURES[0]
    body = json.loads(_score(tmp_path, _frame_with_a_spike(feature), OutputFormat.JSON, 3))
    row = body["results"][7]
    assert row["is_anomaly"] is True
    assert row["top_features"][0]["feature"] == feature
    assert len(row["top_features"]) == 3
    shares = [t["contribution"] for t in row["top_features"]]
    assert shares == sorted(shares, reverse=True) and shares[0] <= row["anomaly_score"] + 1e-3
    assert all(r["top_features"] is None for r in body["results"] if not r["is_anomaly"])


def test_without_explain_the_reply_is_unchanged(tmp_path: Path):
    reply = read_csv_reply(_score(tmp_path, make_frame(50), OutputFormat.CSV, 0))
    assert "top_features" not in reply.columns


def test_a_model_that_cannot_explain_answers_422_naming_why(tmp_path: Path):
    old = numpy_model(4, explains=False)
    with pytest.raises(ApiError) as err:
        _score(tmp_path, make_frame(20), OutputFormat.CSV, 2, model=old)
    assert err.value.status_code == 422
    assert "feature_contributions" in err.value.detail and "version 4" in err.value.detail


def test_parquet_reply_lists_the_top_features_as_structs(tmp_path: Path):
    import io

    import pyarrow.parquet as pq

    feature = FEATURES[2]
    body = _score(tmp_path, _frame_with_a_spike(feature), OutputFormat.PARQUET, 2)
    table = pq.read_table(io.BytesIO(body))
    cells = table.column("top_features").to_pylist()
    flags = table.column("is_anomaly").to_pylist()
    assert flags[7] and cells[7][0]["feature"] == feature and len(cells[7]) == 2
    assert all(cell is None for cell, flag in zip(cells, flags, strict=True) if not flag)
