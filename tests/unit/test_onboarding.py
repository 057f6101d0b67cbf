"""``anomalyops init``'s core: reading the user's files, inferring roles and the spec, days."""

import datetime as dt
import gzip

import numpy as np
import pandas as pd
import pytest

from anomalyops.ingest import ingest
from anomalyops.lake import Lake, Zone
from anomalyops.onboarding import (
    OnboardingError,
    existing_landing,
    plan_onboarding,
    read_sources,
    spec_yaml,
    validated_days,
)
from anomalyops.sources.landing import Limits
from anomalyops.spec import load_spec


def telemetry(days=3, per_day=24, start="2026-03-01", seed=0):
    rng = np.random.default_rng(seed)
    n = days * per_day
    return pd.DataFrame(
        {
            "time": pd.date_range(start, periods=n, freq=f"{86400 // per_day}s").astype(str),
            "Temp (C)": rng.normal(20, 2, n).round(3),
            "pressure": rng.uniform(1, 2, n).round(3),
            "is_anomaly": [0] * (n - 1) + [1],
        }
    )


def write_csv(path, df):
    df.to_csv(path, index=False)
    return path


def test_timestamp_label_features_and_renames(tmp_path):
    f = write_csv(tmp_path / "a.csv", telemetry())
    plan = plan_onboarding(read_sources([f]), name="my plant")
    spec = plan.spec
    assert spec.name == "my_plant"
    assert spec.timestamp.column == "time"
    assert spec.label_column == "is_anomaly"
    assert spec.entity is None
    assert spec.feature_names == ["Temp__C_", "pressure"]
    assert plan.renamed == {"Temp (C)": "Temp__C_"}
    temp = spec.feature("Temp__C_")
    assert temp.min < plan.table["Temp__C_"].min() and temp.max > plan.table["Temp__C_"].max()
    assert list(plan.days) == [dt.date(2026, 3, d) for d in (1, 2, 3)]
    assert all(len(d) == 24 for d in plan.days.values())
    assert "Temp__C_" in plan.days[dt.date(2026, 3, 1)].columns
    assert "is_anomaly" in spec_yaml(spec, plan) and "'Temp (C)'" in spec_yaml(spec, plan)


def test_explicit_label_and_entity(tmp_path):
    df = telemetry()
    df["station"] = ["a", "b"] * (len(df) // 2)
    df["flag"] = df.pop("is_anomaly")
    f = write_csv(tmp_path / "a.csv", df)
    plan = plan_onboarding(read_sources([f]), name="x", label="flag")
    assert plan.spec.label_column == "flag"
    assert plan.spec.entity.column == "station"
    assert "flag" not in plan.spec.feature_names


def test_binary_column_without_a_label_name_stays_a_feature(tmp_path):
    df = telemetry()
    df["valve_open"] = df.pop("is_anomaly")
    plan = plan_onboarding(read_sources([write_csv(tmp_path / "a.csv", df)]), name="x")
    assert plan.spec.label is None
    assert "valve_open" in plan.spec.feature_names


def test_rows_per_day_gives_synthetic_dates(tmp_path):
    df = telemetry().drop(columns=["time"])
    f = write_csv(tmp_path / "matrix.csv", df)
    plan = plan_onboarding(read_sources([f]), name="m", rows_per_day=30, start=dt.date(2026, 1, 1))
    assert [len(d) for d in plan.days.values()] == [30, 30, 12]
    assert list(plan.days) == [dt.date(2026, 1, d) for d in (1, 2, 3)]
    assert plan.spec.timestamp.column == "timestamp"
    assert plan.days[dt.date(2026, 1, 2)]["timestamp"].is_unique


def test_no_timestamp_says_what_to_do(tmp_path):
    f = write_csv(tmp_path / "m.csv", telemetry().drop(columns=["time"]))
    with pytest.raises(OnboardingError, match=r"m\.csv: no timestamp column.*--rows-per-day"):
        plan_onboarding(read_sources([f]), name="m")


def test_mixed_csv_and_parquet_files(tmp_path):
    df = telemetry(days=4)
    a = write_csv(tmp_path / "a.csv", df.iloc[:48])
    b = tmp_path / "b.parquet"
    second = df.iloc[48:].copy()
    second["time"] = pd.to_datetime(second["time"])
    second.to_parquet(b, index=False)
    gz = tmp_path / "c.csv.gz"
    gz.write_bytes(gzip.compress(df.iloc[:0].to_csv(index=False).encode()))  # header only
    plan = plan_onboarding(read_sources([a, b]), name="mixed")
    assert len(plan.table) == 96 and len(plan.days) == 4
    with pytest.raises(OnboardingError, match=r"c\.csv\.gz: the file has a header but no rows"):
        read_sources([a, gz])


def test_files_with_different_columns_are_named(tmp_path):
    a = write_csv(tmp_path / "a.csv", telemetry())
    b = write_csv(tmp_path / "b.csv", telemetry().drop(columns=["pressure"]))
    with pytest.raises(OnboardingError, match=r"b\.csv: missing column\(s\) 'pressure'"):
        plan_onboarding(read_sources([a, b]), name="x")


def test_bad_number_names_file_column_and_first_row(tmp_path):
    a = write_csv(tmp_path / "a.csv", telemetry())
    df = telemetry(start="2026-03-04")
    df["pressure"] = df["pressure"].astype(object)
    df.loc[5, "pressure"] = "n/a"
    df.loc[9, "pressure"] = "?"
    b = write_csv(tmp_path / "b.csv", df)
    with pytest.raises(OnboardingError) as err:
        plan_onboarding(read_sources([a, b]), name="x")
    assert err.value.problems == [
        f"{b}: column 'pressure': not a number at row 6 (line 7): 'n/a' (1 more bad value(s))"
    ]


def test_bad_timestamp_names_file_column_and_row(tmp_path):
    df = telemetry()
    df.loc[3, "time"] = "yesterday-ish"
    f = write_csv(tmp_path / "a.csv", df)
    with pytest.raises(OnboardingError, match=r"a\.csv: column 'time': not a timestamp at row 4"):
        plan_onboarding(read_sources([f]), name="x")


def test_label_that_is_not_0_or_1_is_named(tmp_path):
    df = telemetry()
    df.loc[2, "is_anomaly"] = 7
    f = write_csv(tmp_path / "a.csv", df)
    with pytest.raises(OnboardingError, match=r"column 'is_anomaly': not a 0 or 1 at row 3"):
        plan_onboarding(read_sources([f]), name="x", label="is_anomaly")


def test_text_column_is_left_out_and_named(tmp_path):
    df = telemetry()
    df["comment"] = [f"note {i}" for i in range(len(df))]
    plan = plan_onboarding(read_sources([write_csv(tmp_path / "a.csv", df)]), name="x")
    assert "comment" in plan.ignored
    assert plan.spec.entity is None


def test_nulls_give_a_null_allowance(tmp_path):
    df = telemetry()
    df.loc[:3, "pressure"] = np.nan
    plan = plan_onboarding(read_sources([write_csv(tmp_path / "a.csv", df)]), name="x")
    assert plan.spec.feature("pressure").max_null_fraction == pytest.approx(0.12)


def test_repeated_timestamps_are_noted(tmp_path):
    df = telemetry()
    df.loc[5, "time"] = df.loc[4, "time"]
    plan = plan_onboarding(read_sources([write_csv(tmp_path / "a.csv", df)]), name="x")
    assert any("repeat a timestamp (on 2026-03-01)" in n for n in plan.notes)


def test_file_too_large_is_refused_with_the_setting(tmp_path):
    f = write_csv(tmp_path / "big.csv", telemetry())
    with pytest.raises(OnboardingError, match=r"big\.csv: refused: .*MAX_FILE_BYTES"):
        read_sources([f], Limits(max_file_bytes=100))
    with pytest.raises(OnboardingError, match=r"MAX_ROWS"):
        read_sources([f, f], Limits(max_rows=100))


def test_unknown_suffix_and_missing_file(tmp_path):
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    with pytest.raises(OnboardingError) as err:
        read_sources([tmp_path / "x.xlsx", tmp_path / "nope.csv"])
    assert "x.xlsx: not a CSV" in err.value.problems[0]
    assert "nope.csv: no such file" in err.value.problems[1]


def test_symlink_is_refused(tmp_path):
    real = write_csv(tmp_path / "a.csv", telemetry())
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    with pytest.raises(OnboardingError, match="symbolic link"):
        read_sources([link])


def test_days_ingest_like_landed_files(tmp_path, monkeypatch):
    """What init writes to landing/ is what ingest reads back, spec and all."""
    from anomalyops.history import write_landing
    from anomalyops.settings import Settings

    f = write_csv(tmp_path / "a.csv", telemetry(days=2))
    plan = plan_onboarding(read_sources([f]), name="x")
    spec_path = tmp_path / "x.yaml"
    spec_path.write_text(spec_yaml(plan.spec, plan))
    assert load_spec(spec_path) == plan.spec
    lake = Lake(str(tmp_path / "lake"))
    assert existing_landing(lake, plan.days) == []
    write_landing(lake, plan.days)
    assert len(existing_landing(lake, plan.days)) == 2
    monkeypatch.setenv("ANOMALYOPS_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("ANOMALYOPS_SOURCE", "landing")
    settings = Settings()
    for day in plan.days:
        ingest(day, settings, plan.spec)
        raw = lake.read_table(Zone.RAW, day)
        assert len(raw) == 24 and list(raw.columns)[:2] == ["time", "Temp__C_"]
    with pytest.raises(OnboardingError, match="no validated days"):
        validated_days(lake, 7)
