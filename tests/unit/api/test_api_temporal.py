"""Scoring with a temporal spec: derived columns from preceding rows, 422 or warm-up rows."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomalyops.settings import PROJECT_ROOT
from anomalyops.spec import load_spec
from anomalyops.temporal import add_derived
from anomalyops_api.errors import ApiError
from anomalyops_api.model import LoadedModel, ModelMetadata
from anomalyops_api.scoring import InputFormat, OutputFormat, score_file
from tests.helpers.api import csv_bytes, make_frame, parquet_bytes, read_csv_reply

SPEC = load_spec(PROJECT_ROOT / "config" / "examples" / "feature_spec_temporal.yaml")
STD = [d.name for d in SPEC.derived_columns if d.temporal.kind == "rolling_std"]
THRESHOLD = 30.0


def expected_scores(inputs: pd.DataFrame) -> np.ndarray:
    """The stand-in model's score: the sum of the features' rolling spreads."""
    return inputs[STD].to_numpy(np.float32).sum(axis=1)


def temporal_model() -> LoadedModel:
    from anomalyops_api.demo_model import metadata

    def predict(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        assert sorted(inputs) == sorted(SPEC.model_columns)  # features and derived columns
        scores = expected_scores(pd.DataFrame(inputs))
        return {
            "anomaly_score": scores,
            "threshold": np.full(len(scores), THRESHOLD, np.float32),
            "is_anomaly": scores > THRESHOLD,
        }

    return LoadedModel(
        version=3,
        path=Path("/nonexistent/3"),
        metadata=ModelMetadata.model_validate(metadata(SPEC, 3, threshold=THRESHOLD)),
        spec=SPEC,
        loaded_at=dt.datetime.now(dt.timezone.utc),
        load_seconds=0.0,
        _predict=predict,
    )


def score(tmp_path: Path, data: bytes, fmt=InputFormat.CSV, out=OutputFormat.CSV, **kw):
    src, dest = tmp_path / "input", tmp_path / f"out.{out.value}"
    src.write_bytes(data)
    score_file(
        src,
        fmt,
        temporal_model(),
        dest,
        out,
        csv_block_bytes=64 * 1024,
        parquet_batch_rows=kw.pop("batch_rows", 50),
        **kw,
    )
    return dest.read_bytes()


def test_rows_without_enough_history_are_a_422_naming_entity_column_and_rows(tmp_path):
    frame = make_frame(300)  # three stations, interleaved
    with pytest.raises(ApiError) as err:
        score(tmp_path, csv_bytes(frame))
    assert err.value.status_code == 422
    assert err.value.detail.startswith(
        "entity 'st-000': column 'inlet_pressure__rolling_dev_30' needs 29 preceding rows of "
        "the same entity; row 1 has 0: send at least 29 earlier rows of each entity"
    )
    assert "warmup=true" in err.value.detail
    assert err.value.extra == {
        "entity": "st-000",
        "column": "inlet_pressure__rolling_dev_30",
        "needed_rows": 29,
    }


@pytest.mark.parametrize("fmt", [InputFormat.CSV, InputFormat.PARQUET])
def test_warmup_rows_come_back_unscored_and_the_rest_as_in_training(tmp_path, fmt):
    frame = make_frame(1400)  # many chunks: history must carry across them (< 1 day)
    data = csv_bytes(frame) if fmt is InputFormat.CSV else parquet_bytes(frame)
    reply = read_csv_reply(score(tmp_path, data, fmt, warmup=True))
    assert len(reply) == len(frame)
    assert reply["station_id"].tolist() == frame["station_id"].tolist()
    # The lake's computation of the same rows (ingest uses add_derived too).
    lake_rows = frame.assign(timestamp=pd.to_datetime(frame["timestamp"], utc=True))
    derived = add_derived(SPEC, lake_rows)
    want = expected_scores(derived)
    warm = derived[[d.name for d in SPEC.derived_columns]].isna().any(axis=1).to_numpy()
    assert warm.sum() == 3 * 29  # each station's first 29 rows
    assert reply["anomaly_score"][warm].isna().all() and reply["is_anomaly"][warm].isna().all()
    np.testing.assert_allclose(reply["anomaly_score"][~warm], want[~warm], rtol=1e-5)
    assert reply["is_anomaly"][~warm].isin([True, False]).all()


def test_json_reply_has_null_scores_for_warmup_rows(tmp_path):
    frame = make_frame(120)
    body = json.loads(score(tmp_path, csv_bytes(frame), out=OutputFormat.JSON, warmup=True))
    results = body["results"]
    assert [r["anomaly_score"] is None for r in results[:3]] == [True] * 3
    assert results[-1]["anomaly_score"] is not None and results[-1]["is_anomaly"] is not None
    assert sum(r["is_anomaly"] is None for r in results) == 3 * 29


def test_a_temporal_model_needs_the_key_columns(tmp_path):
    frame = make_frame(60).drop(columns=["timestamp"])
    with pytest.raises(ApiError, match="missing columns required by model version 3: timestamp"):
        score(tmp_path, csv_bytes(frame), warmup=True)


def test_an_entity_going_back_in_time_is_named(tmp_path):
    frame = make_frame(600)
    frame = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)  # st-000 at 00:00 again
    with pytest.raises(ApiError, match=r"row 601: entity 'st-000' goes back in time"):
        score(tmp_path, parquet_bytes(frame), InputFormat.PARQUET, warmup=True, batch_rows=600)


def test_a_saved_model_for_a_temporal_spec_loads_and_scores(tmp_path):
    """The real path: the signature takes every model column, load_model checks and warms it."""
    from anomalyops_api.demo_model import expected_scores as demo_scores
    from anomalyops_api.demo_model import write_version
    from anomalyops_api.model import load_model

    model = load_model(write_version(tmp_path / "serving", 5, SPEC), 5, warmup_rows=8)
    assert model.feature_names == SPEC.feature_names  # what a caller sends
    frame = make_frame(150)
    src, dest = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_bytes(csv_bytes(frame))
    score_file(src, InputFormat.CSV, model, dest, OutputFormat.CSV, warmup=True)
    reply = read_csv_reply(dest.read_bytes())
    want = demo_scores(SPEC, {n: frame[n].to_numpy() for n in SPEC.feature_names})
    scored = reply["anomaly_score"].notna().to_numpy()
    assert scored.sum() == 150 - 3 * 29
    np.testing.assert_allclose(reply["anomaly_score"][scored], want[scored], rtol=1e-5)
