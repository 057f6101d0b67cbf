"""The GX suite derives from whatever spec it is given; curated additions are checked."""

import pytest

from anomalyops.spec import parse_spec
from anomalyops.validation.gx_suite import (
    CuratedExpectationsError,
    generated_expectations,
    load_curated,
)

SPEC = parse_spec(
    {
        "name": "pumps",
        "timestamp": {"column": "ts"},
        "entity": {"column": "pump"},
        "features": [
            {"name": "flow", "min": 0, "max": 10, "max_null_fraction": 0.1},
            {"name": "temp"},
        ],
        "rows_per_day": {"min": 5, "max": 50},
    }
)


def by_type(expectations, type_):
    return [e["kwargs"] for e in expectations if e["type"] == type_]


def test_suite_covers_every_spec_rule():
    exps = generated_expectations(SPEC)
    assert by_type(exps, "expect_table_row_count_to_be_between") == [
        {"min_value": 5, "max_value": 50}
    ]
    assert {k["column"] for k in by_type(exps, "expect_column_to_exist")} == {
        "ts",
        "pump",
        "flow",
        "temp",
    }
    nulls = {
        k["column"]: k.get("mostly") for k in by_type(exps, "expect_column_values_to_not_be_null")
    }
    assert nulls == {"flow": 0.9, "temp": 1.0, "pump": None, "ts": None}
    ranges = by_type(exps, "expect_column_values_to_be_between")
    assert {"column": "flow", "min_value": 0, "max_value": 10} in ranges
    assert not any(r["column"] == "temp" for r in ranges)  # no bounds in the spec, no check
    (window,) = [r for r in ranges if r["column"] == "ts"]
    assert window["min_value"] == {"$PARAMETER": "day_start"} and window["strict_max"] is True
    types = {k["column"] for k in by_type(exps, "expect_column_values_to_be_in_type_list")}
    assert types == {"flow", "temp", "pump"}
    assert by_type(exps, "expect_compound_columns_to_be_unique") == [
        {"column_list": ["pump", "ts"]}
    ]
    assert all(e["meta"]["source"] == "feature_spec" for e in exps)


def test_a_spec_without_entity_gets_a_buildable_uniqueness_check():
    from anomalyops.validation.gx_suite import build_suite

    spec = parse_spec({"name": "m", "timestamp": {"column": "ts"}, "features": [{"name": "v"}]})
    exps = generated_expectations(spec)
    assert by_type(exps, "expect_compound_columns_to_be_unique") == []
    assert by_type(exps, "expect_column_values_to_be_unique") == [{"column": "ts"}]
    build_suite(spec, [])  # GX accepts every generated expectation


def test_curated_file_is_per_spec_and_validated(tmp_path):
    assert load_curated(tmp_path, SPEC) == []  # no file: no additions
    folder = tmp_path / "curated"
    folder.mkdir()
    (folder / "pumps.yml").write_text(
        "expectations:\n  - type: expect_column_values_to_be_unique\n    kwargs: {column: ts}\n"
    )
    (curated,) = load_curated(tmp_path, SPEC)
    assert curated == {
        "type": "expect_column_values_to_be_unique",
        "kwargs": {"column": "ts"},
        "meta": {"source": "curated"},
    }
    (folder / "pumps.yml").write_text("expectations:\n  - kwargs: {}\n")
    with pytest.raises(CuratedExpectationsError, match=r"expectations\[0\] needs a 'type'"):
        load_curated(tmp_path, SPEC)
    (folder / "pumps.yml").write_text("- just a list\n")
    with pytest.raises(CuratedExpectationsError, match="'expectations' list"):
        load_curated(tmp_path, SPEC)
