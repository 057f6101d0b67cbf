"""anomalyops.temporal: derived columns per entity in time order, history, gaps, streaming."""

import numpy as np
import pandas as pd
import pytest

from anomalyops.settings import PROJECT_ROOT
from anomalyops.spec import load_spec, parse_spec
from anomalyops.temporal import (
    TemporalError,
    TemporalGapError,
    TemporalStream,
    add_derived,
    chunk_inputs,
    derive,
    tail,
)

SPEC = parse_spec(
    {
        "name": "t",
        "timestamp": {"column": "ts"},
        "entity": {"column": "site"},
        "features": [
            {
                "name": "x",
                "temporal": [
                    {"kind": "rolling_std", "window": 4},
                    {"kind": "diff", "lag": 2},
                    {"kind": "rolling_dev", "window": 3},
                ],
            },
            {"name": "y"},
        ],
    }
)


def frame(values: dict[str, list[float]], start: str = "2026-11-05") -> pd.DataFrame:
    """One row a minute per site; sites interleaved row by row, as a mixed export arrives."""
    parts = []
    for site, xs in values.items():
        ts = pd.date_range(start, periods=len(xs), freq="min", tz="UTC")
        parts.append(pd.DataFrame({"site": site, "ts": ts, "x": xs, "y": 0.0}))
    out = pd.concat(parts).sort_values(["ts", "site"], kind="stable")
    return out.reset_index(drop=True)


def test_rolling_std_of_a_stuck_segment_is_zero_and_not_elsewhere() -> None:
    xs = [1.0, 2.5, 0.5, 3.0, 7.0, 7.0, 7.0, 7.0, 7.0, 2.0]
    df = frame({"a": xs})
    out = add_derived(SPEC, df)
    std = out["x__rolling_std_4"].to_numpy()
    assert np.isnan(std[:3]).all()  # window 4 needs 3 preceding rows
    assert std[7] == 0.0 and std[8] == 0.0  # rows 5-8 are all 7.0
    assert (std[3:7] > 0).all() and std[9] > 0
    assert out["x__diff_2"].iloc[4] == pytest.approx(7.0 - 0.5)
    assert out["x__rolling_dev_3"].iloc[3] == pytest.approx(3.0 - np.mean([2.5, 0.5, 3.0]))


def test_windows_stay_within_their_entity_in_time_order() -> None:
    a = [1.0, 2.0, 3.0, 4.0, 5.0]
    b = [100.0, 300.0, 600.0, 1000.0, 1500.0]
    df = frame({"a": a, "b": b}).sample(frac=1.0, random_state=3)  # any input order
    out = derive(SPEC, df)
    got = pd.concat([df, out.values], axis=1).sort_values(["site", "ts"])
    b_rows = got[got.site == "b"]
    # b's first rows lack history even though a's rows precede them in the file
    assert b_rows["x__diff_2"].isna().tolist() == [True, True, False, False, False]
    assert b_rows["x__diff_2"].iloc[2:].tolist() == [500.0, 700.0, 900.0]
    assert got[got.site == "a"]["x__diff_2"].iloc[2:].tolist() == [2.0, 2.0, 2.0]
    ready = pd.Series(out.ready, index=df.index)[got.index]
    assert ready.tolist() == [False, False, False, True, True] * 2  # the longest: window 4
    # output rows follow the input's order
    assert out.values.index.equals(df.index)


def test_a_large_valued_entity_does_not_blur_the_next_ones_spread() -> None:
    small = [1e-3, 2e-3, 4e-3, 3e-3, 5e-3, 5e-3, 5e-3, 5e-3]
    df = frame({"a": [1e9 + 7.0 * i for i in range(8)], "b": small})
    out = pd.concat([df, derive(SPEC, df).values], axis=1)
    b = out[out.site == "b"]["x__rolling_std_4"].to_numpy()
    want = [np.std(small[i - 3 : i + 1]) for i in range(3, 8)]
    np.testing.assert_allclose(b[3:], want, rtol=1e-9)
    assert b[-1] == 0.0


def test_history_rows_make_day_boundaries_seamless() -> None:
    rng = np.random.default_rng(0)
    both = frame({"a": list(rng.normal(size=40)), "b": list(rng.normal(size=40))})
    day1, day2 = both.iloc[:50], both.iloc[50:]
    whole = add_derived(SPEC, both).iloc[50:]
    seamed = add_derived(SPEC, day2, tail(SPEC, day1))
    cols = [d.name for d in SPEC.derived_columns]
    np.testing.assert_allclose(seamed[cols].to_numpy(), whole[cols].to_numpy(), rtol=1e-12)
    assert seamed[cols].notna().all().all()
    assert len(tail(SPEC, day1)) == 2 * SPEC.history_rows
    # without the history, day 2 starts cold again
    assert add_derived(SPEC, day2)[cols].isna().any().any()


def test_gaps_name_the_entity_the_column_and_the_rows_needed() -> None:
    df = frame({"a": [1.0] * 6, "b": [2.0] * 2})
    result = derive(SPEC, df)
    assert [(g.entity, g.column, g.needed, g.available) for g in result.gaps] == [
        ("a", "x__rolling_std_4", 3, 0),
        ("b", "x__rolling_std_4", 3, 0),
    ]
    assert result.gaps[1].describe() == (
        "entity 'b': column 'x__rolling_std_4' needs 3 preceding rows of the same entity; "
        "row 2 has 0"
    )
    stream = TemporalStream(SPEC)
    features = {"x": df["x"].to_numpy(), "y": df["y"].to_numpy()}
    keys = {"site": df["site"].to_numpy(), "ts": df["ts"].astype(str).to_numpy()}
    with pytest.raises(TemporalGapError, match=r"entity 'a': column 'x__rolling_std_4' needs 3"):
        chunk_inputs(stream, keys, features, 0, warmup=False)


def test_warmup_rows_are_reported_not_scored_and_inputs_are_finite() -> None:
    df = frame({"a": [1.0, 2.0, 4.0, 8.0, 16.0]})
    features = {"x": df["x"].to_numpy(np.float32), "y": df["y"].to_numpy(np.float32)}
    keys = {"site": df["site"].to_numpy(), "ts": df["ts"].astype(str).to_numpy()}
    inputs, ready = chunk_inputs(TemporalStream(SPEC), keys, features, 0, warmup=True)
    assert ready.tolist() == [False, False, False, True, True]
    assert set(inputs) == set(SPEC.model_columns)
    assert all(np.isfinite(v).all() and v.dtype == np.float32 for v in inputs.values())
    assert inputs["x__diff_2"][3:].tolist() == [6.0, 12.0]


def test_a_stream_of_chunks_equals_one_pass_and_refuses_going_back_in_time() -> None:
    rng = np.random.default_rng(1)
    df = frame({"a": list(rng.normal(size=30)), "b": list(rng.normal(size=30))})
    one = derive(SPEC, df).values
    stream = TemporalStream(SPEC)
    parts = [stream.next(df.iloc[i : i + 7], offset=i).values for i in range(0, len(df), 7)]
    np.testing.assert_allclose(pd.concat(parts).to_numpy(), one.to_numpy(), rtol=1e-12)
    late = df.iloc[[0]].copy()
    with pytest.raises(TemporalError, match=r"row 61: entity 'a' goes back in time"):
        stream.next(late, offset=60)


def test_a_missing_value_leaves_its_windows_missing_but_rows_ready() -> None:
    df = frame({"a": [1.0, 2.0, 3.0, 4.0, np.nan, 6.0, 7.0, 8.0, 9.0, 10.0]})
    out = derive(SPEC, df)
    std = out.values["x__rolling_std_4"]
    assert std.iloc[4:8].isna().all() and std.iloc[[3, 8, 9]].notna().all()
    assert out.ready[3:].all()


def test_a_bad_timestamp_is_named() -> None:
    df = frame({"a": [1.0, 2.0, 3.0]})
    df["ts"] = df["ts"].astype(str)
    df.loc[1, "ts"] = "yesterday-ish"
    with pytest.raises(TemporalError, match=r"row 2, column 'ts': 'yesterday-ish' is not a"):
        derive(SPEC, df)


def test_a_spec_without_derivations_passes_frames_through() -> None:
    spec = load_spec(PROJECT_ROOT / "config" / "feature_spec.yaml")
    df = frame({"a": [1.0]})
    assert add_derived(spec, df) is df
    assert derive(spec, df).ready.all() and spec.history_rows == 0
