"""Fingerprints and the staleness check of the compiled pipeline (no TFX needed)."""

from __future__ import annotations

import json
import sys

import pytest
from google.protobuf import struct_pb2

from anomalyops_airflow import ir


@pytest.fixture
def package(tmp_path, monkeypatch):
    """An importable throw-away package standing in for the pipeline code."""
    root = tmp_path / "src"
    pkg = root / "fp_demo_pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "m.py").write_text("X = 1\n")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "m.cpython-310.pyc").write_bytes(b"junk")
    monkeypatch.syspath_prepend(str(root))
    yield pkg
    sys.modules.pop("fp_demo_pkg", None)


def test_fingerprint_follows_sources_files_and_values(package, tmp_path):
    extra = tmp_path / "spec.yaml"
    extra.write_text("a: 1\n")

    def fp(**values):
        return ir.compute_fingerprint(packages=["fp_demo_pkg"], files=[extra], values=values)

    base = fp(v=1)
    assert fp(v=1) == base
    assert fp(v=2) != base
    (package / "__pycache__" / "m.cpython-310.pyc").write_bytes(b"other")
    assert fp(v=1) == base, "bytecode must not count"
    (package / "sub" / "m.py").write_text("X = 2\n")
    changed_code = fp(v=1)
    assert changed_code != base
    (package / "sub" / "new.py").write_text("")
    assert fp(v=1) != changed_code
    extra.write_text("a: 2\n")
    assert fp(v=1) != changed_code
    extra.unlink()
    assert ir.compute_fingerprint(files=[extra]) != ir.compute_fingerprint()


def test_fingerprint_names_an_unimportable_package():
    with pytest.raises(ir.CompiledPipelineError, match="'no_such_pkg_xyz' is not importable"):
        ir.compute_fingerprint(packages=["no_such_pkg_xyz"])


def test_check_missing_stale_fresh(tmp_path):
    compiled = ir.CompiledPipeline(tmp_path / "compiled", "p")
    status = ir.check(compiled, "abc")
    assert status.state == "missing"
    assert "anomalyops compile-pipeline" in status.message

    message = struct_pb2.Struct()
    message.update({"pipeline": "p"})
    ir.write_compiled(message, compiled, "abc", schema_path=None)
    assert compiled.pb_path.read_bytes() == message.SerializeToString()
    assert json.loads(compiled.json_path.read_text()) == {"pipeline": "p"}
    assert compiled.read_record()["fingerprint"] == "abc"
    assert ir.check(compiled, "abc").fresh

    stale = ir.check(compiled, "def")
    assert stale.state == "stale"
    assert (stale.expected, stale.actual) == ("def", "abc")
    assert "is stale" in stale.message and "anomalyops compile-pipeline" in stale.message

    compiled.pb_path.unlink()
    assert ir.check(compiled, "abc").state == "missing"


def test_project_fingerprint_tracks_pipeline_settings_only(settings_env, monkeypatch):
    base = ir.project_fingerprint(settings_env())
    assert ir.project_fingerprint(settings_env()) == base

    for var, value in [
        ("ANOMALYOPS_SMTP__HOST", "mail.example"),
        ("ANOMALYOPS_ALERT_EMAILS", '["a@b.c"]'),
        ("ANOMALYOPS_TRAINING__METADATA_DB_URL", "mysql://u:secret@db/mlmd"),
        ("ANOMALYOPS_ORCHESTRATION__RETRIES", "5"),
    ]:
        monkeypatch.setenv(var, value)
        settings_env.cache_clear()
        assert ir.project_fingerprint(settings_env()) == base, f"{var} must not make the IR stale"

    monkeypatch.setenv("ANOMALYOPS_TRAINING__EPOCHS", "3")
    settings_env.cache_clear()
    assert ir.project_fingerprint(settings_env()) != base


def test_project_fingerprint_tracks_spec_and_schema(settings_env, monkeypatch, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(settings_env().feature_spec_path.read_bytes())
    monkeypatch.setenv("ANOMALYOPS_FEATURE_SPEC_PATH", str(spec))
    settings_env.cache_clear()
    settings = settings_env()
    base = ir.project_fingerprint(settings)
    spec.write_text(spec.read_text() + "\n# edited\n")
    assert ir.project_fingerprint(settings) != base

    schema = tmp_path / "schema.pbtxt"
    schema.write_text("feature {}")
    with_schema = ir.project_fingerprint(settings, schema_path=schema)
    schema.write_text("feature { name: 'x' }")
    assert ir.project_fingerprint(settings, schema_path=schema) != with_schema


def test_project_status_uses_the_schema_recorded_at_compile_time(settings_env, tmp_path):
    settings = settings_env()
    compiled = ir.compiled_pipeline(settings)
    assert compiled.directory == settings.pipeline_root / "compiled"
    assert ir.project_status(settings).state == "missing"

    schema = tmp_path / "schema.pbtxt"
    schema.write_text("feature {}")
    ir.write_compiled(
        struct_pb2.Struct(),
        compiled,
        ir.project_fingerprint(settings, schema_path=schema),
        schema_path=str(schema),
    )
    assert ir.project_status(settings).fresh
    schema.write_text("feature { name: 'x' }")
    assert ir.project_status(settings).state == "stale"
