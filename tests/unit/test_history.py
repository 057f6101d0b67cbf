import datetime as dt

import numpy as np
import pandas as pd
import pytest
import yaml

from anomalyops.history import infer_spec, split_into_days, write_landing
from anomalyops.ingest import ingest
from anomalyops.lake import Lake


def matrix(n=10):
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"0": rng.normal(size=n), "b": rng.uniform(5, 6, size=n), "y": [0] * (n - 1) + [1]}
    )


def test_infer_spec_makes_identifiers_and_padded_ranges():
    df = matrix()
    spec = infer_spec(df, name="my-data", label="y")
    assert spec.name == "my_data"
    assert spec.feature_names == ["f_0", "b"]
    assert spec.label_column == "y"
    b = spec.feature("b")
    assert b.min < df["b"].min() and b.max > df["b"].max()


def test_infer_spec_needs_numeric_columns():
    with pytest.raises(ValueError, match="no numeric columns"):
        infer_spec(pd.DataFrame({"s": ["a"]}), name="x")


def test_split_synthesizes_timestamps_when_absent():
    df = matrix(10).rename(columns={"0": "f_0"})
    spec = infer_spec(df, name="m", label="y")
    days = split_into_days(df, spec, start=dt.date(2026, 1, 1), rows_per_day=4)
    assert [len(d) for d in days.values()] == [4, 4, 2]
    assert list(days) == [dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)]
    assert days[dt.date(2026, 1, 2)]["timestamp"].is_unique
    with pytest.raises(ValueError, match="no 'timestamp' column"):
        split_into_days(df, spec)


def test_split_by_existing_timestamps_and_round_trip_through_ingest(
    settings_env, monkeypatch, tmp_path
):
    df = pd.DataFrame(
        {
            "timestamp": ["2026-01-01 23:00", "2026-01-02 01:00", "2026-01-02 02:00"],
            "v": [1.0, 2.0, 3.0],
        }
    )
    spec = infer_spec(df, name="m")
    days = split_into_days(df, spec)
    assert {d: len(f) for d, f in days.items()} == {dt.date(2026, 1, 1): 1, dt.date(2026, 1, 2): 2}

    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True)))
    monkeypatch.setenv("ANOMALYOPS_FEATURE_SPEC_PATH", str(spec_file))
    monkeypatch.setenv("ANOMALYOPS_SOURCE", "landing")
    settings = settings_env()
    lake = Lake(settings.lake_root)
    assert len(write_landing(lake, days)) == 2
    assert ingest("2026-01-02", settings).rows == 2
