"""Temporal derivations in the feature spec: names, validation errors, the example spec."""

import pytest

from anomalyops.settings import PROJECT_ROOT
from anomalyops.spec import FeatureSpecError, load_spec, parse_spec
from anomalyops_cli.main import main

EXAMPLE = PROJECT_ROOT / "config" / "examples" / "feature_spec_temporal.yaml"


def spec_with(*temporal: dict, **extra) -> dict:
    return {
        "name": "t",
        "timestamp": {"column": "ts"},
        "features": [{"name": "vibration", "temporal": list(temporal)}, {"name": "speed"}],
        **extra,
    }


def test_derived_columns_have_stable_names_and_follow_the_features() -> None:
    spec = parse_spec(
        spec_with(
            {"kind": "rolling_std", "window": 12},
            {"kind": "diff"},
            {"kind": "rolling_dev", "window": 60},
        )
    )
    assert [d.name for d in spec.derived_columns] == [
        "vibration__rolling_std_12",
        "vibration__diff_1",
        "vibration__rolling_dev_60",
    ]
    assert spec.model_columns == ["vibration", "speed", *[d.name for d in spec.derived_columns]]
    assert spec.history_rows == 59
    assert spec.required_columns == ["ts", "vibration", "speed"]  # inputs carry no derived


@pytest.mark.parametrize(
    ("temporal", "message"),
    [
        (
            {"kind": "rolling_std"},
            r"features\[0\] \(vibration\)\.temporal\[0\]: Value error, rolling_std needs window",
        ),
        (
            {"kind": "diff", "window": 3},
            r"temporal\[0\]: Value error, diff takes lag \(rows back\), not window",
        ),
        (
            {"kind": "rolling_dev", "window": 5, "lag": 1},
            r"temporal\[0\]: Value error, rolling_dev takes window \(rows\), not lag",
        ),
        ({"kind": "rolling_std", "window": 1}, r"temporal\[0\]\.window: Input should be greater"),
        ({"kind": "ewma", "window": 5}, r"temporal\[0\]\.kind: Input should be 'diff'"),
        ({"kind": "diff", "lag": 1, "span": 3}, r"temporal\[0\]\.span: Extra inputs"),
    ],
)
def test_bad_derivations_name_the_field(temporal: dict, message: str) -> None:
    with pytest.raises(FeatureSpecError, match=message):
        parse_spec(spec_with(temporal))


def test_a_derivation_declared_twice_is_refused() -> None:
    with pytest.raises(FeatureSpecError, match=r"declared twice: vibration__diff_1"):
        parse_spec(spec_with({"kind": "diff"}, {"kind": "diff", "lag": 1}))


def test_a_derived_name_may_not_clash_with_a_column() -> None:
    data = spec_with({"kind": "diff", "lag": 2})
    data["features"][1]["name"] = "vibration__diff_2"
    with pytest.raises(FeatureSpecError, match=r"'vibration__diff_2' .* clashes with the feature"):
        parse_spec(data)


def test_a_spec_without_derivations_dumps_as_before() -> None:
    spec = load_spec(PROJECT_ROOT / "config" / "feature_spec.yaml")
    assert all("temporal" not in f for f in spec.model_dump()["features"])
    assert spec.model_columns == spec.feature_names
    temporal = parse_spec(spec_with({"kind": "diff"}))
    assert parse_spec(temporal.model_dump(mode="json")) == temporal  # round-trips via config


def test_the_example_spec_is_the_demo_plus_stuck_and_ramp_context(capsys) -> None:
    demo = load_spec(PROJECT_ROOT / "config" / "feature_spec.yaml")
    spec = load_spec(EXAMPLE)
    assert spec.feature_names == demo.feature_names and spec.name == demo.name
    kinds = {(d.temporal.kind, d.temporal.rows) for d in spec.derived_columns}
    assert kinds == {("rolling_std", 10), ("rolling_dev", 30)}
    assert len(spec.derived_columns) == 2 * len(demo.features)
    assert main(["check-spec", str(EXAMPLE)]) == 0
    assert "compressor_station" in capsys.readouterr().out
