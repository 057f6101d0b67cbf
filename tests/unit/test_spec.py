import pytest
import yaml

from anomalyops.spec import FeatureSpecError, load_spec, parse_spec
from tests.helpers.common import REPO_ROOT

GOOD = {
    "name": "plant",
    "timestamp": {"column": "ts"},
    "entity": {"column": "machine"},
    "label": {"column": "y"},
    "features": [{"name": "a", "min": 0, "max": 10, "unit": "bar"}, {"name": "b"}],
}


def _with(**changes):
    return {**GOOD, **changes}


def test_demo_spec_loads():
    spec = load_spec(REPO_ROOT / "config" / "feature_spec.yaml")
    assert len(spec.features) >= 6
    assert spec.label_column not in spec.feature_names
    assert spec.key_columns == [spec.entity.column, spec.timestamp.column]


def test_derived_column_lists():
    spec = parse_spec(GOOD)
    assert spec.feature_names == ["a", "b"]
    assert spec.required_columns == ["machine", "ts", "a", "b"]
    assert spec.all_columns == ["ts", "machine", "y", "a", "b"]
    assert spec.drift_threshold("a") == spec.default_drift_threshold


def test_fingerprint_is_stable_and_sensitive():
    assert parse_spec(GOOD).fingerprint() == parse_spec(GOOD).fingerprint()
    other = _with(features=[{"name": "a", "min": 0, "max": 11}, {"name": "b"}])
    assert parse_spec(other).fingerprint() != parse_spec(GOOD).fingerprint()


@pytest.mark.parametrize(
    ("data", "names"),
    [
        (_with(features=[]), "features"),
        (_with(features=[{"name": "a", "min": 5, "max": 1}]), "features[0] (a)"),
        (_with(features=[{"name": "bad name"}]), "features[0] (bad name).name"),
        (_with(features=[{"name": "a", "colour": "red"}]), "features[0] (a).colour"),
        (_with(timestamp={}), "timestamp.column"),
        (_with(features=[{"name": "ts"}]), "used as both"),
        (_with(label={"column": "a"}, features=[{"name": "a"}]), "used as both"),
        ({k: v for k, v in GOOD.items() if k != "timestamp"}, "timestamp"),
        (_with(features=[{"name": "a", "max_null_fraction": 2}]), "max_null_fraction"),
    ],
)
def test_malformed_spec_names_the_field(data, names):
    with pytest.raises(FeatureSpecError) as err:
        parse_spec(data, source="spec.yaml")
    assert names in str(err.value)
    assert "spec.yaml" in str(err.value)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FeatureSpecError, match="not found"):
        load_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(FeatureSpecError, match="not valid YAML"):
        load_spec(bad)
    bad.write_text("- a list\n")
    with pytest.raises(FeatureSpecError, match="must be a mapping"):
        load_spec(bad)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(GOOD))
    assert load_spec(good).name == "plant"
