"""Derived temporal columns flow through GX, the TFDV schema, the gate and the model inputs."""

from anomalyops.ingest import ingest, land
from anomalyops.settings import PROJECT_ROOT
from anomalyops.spec import load_spec
from anomalyops.validation import schema as sch
from anomalyops.validation.gx_suite import generated_expectations
from anomalyops_tfx.features import model_inputs

EXAMPLE = PROJECT_ROOT / "config" / "examples" / "feature_spec_temporal.yaml"
SPEC = load_spec(EXAMPLE)
DERIVED = [d.name for d in SPEC.derived_columns]


def test_gx_suite_and_model_inputs_include_the_derived_columns():
    exps = generated_expectations(SPEC)
    exist = {e["kwargs"]["column"] for e in exps if e["type"] == "expect_column_to_exist"}
    typed = {
        e["kwargs"]["column"]
        for e in exps
        if e["type"] == "expect_column_values_to_be_in_type_list"
    }
    not_null = {
        e["kwargs"]["column"] for e in exps if e["type"] == "expect_column_values_to_not_be_null"
    }
    assert set(DERIVED) <= exist and set(DERIVED) <= typed
    assert not set(DERIVED) & not_null  # warm-up rows are missing by design
    assert model_inputs(SPEC) == [*SPEC.feature_names, *DERIVED]


def test_inferred_schema_describes_derived_columns_as_optional_floats():
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = sch.infer_curated_schema(SPEC, sch.simulated_good_days(SPEC, 2, 288, seed=1))
    feats = {f.name: f for f in schema.feature}
    assert [f.name for f in schema.feature][-len(DERIVED) :] == DERIVED
    for name in DERIVED:
        assert feats[name].type == schema_pb2.FLOAT
        assert feats[name].presence.min_fraction == 0.0
    assert sch.check_schema_matches_spec(schema, SPEC) == []
    demo = sch.load_schema(PROJECT_ROOT / "config" / "schema" / "schema.pbtxt")
    problems = sch.check_schema_matches_spec(demo, SPEC)
    assert f"feature {DERIVED[0]!r} of the spec is not in the schema" in problems


def test_the_gate_passes_a_temporal_day(settings_env, monkeypatch, tmp_path):
    from anomalyops.validation.quality_gate import run_gate

    path = tmp_path / "schema.pbtxt"
    schema = sch.infer_curated_schema(SPEC, sch.simulated_good_days(SPEC, 3, 288, seed=2))
    sch.write_schema(schema, path, SPEC)
    monkeypatch.setenv("ANOMALYOPS_FEATURE_SPEC_PATH", str(EXAMPLE))
    monkeypatch.setenv("ANOMALYOPS_VALIDATION__SCHEMA_PATH", str(path))
    s = settings_env()
    for day in ("2026-11-05", "2026-11-06"):
        land(day, s)
        ingest(day, s)
    gate = run_gate("2026-11-06", s)
    assert gate["decision"] != "fail", gate
    assert gate["expectations"]["failed"] == [] and gate["tfdv"]["anomalies"] == []
