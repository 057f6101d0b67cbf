"""``anomalyops init`` end to end on a slice of a bundled NAB series, into a temp lake."""

from __future__ import annotations

import datetime as dt
import os

import pandas as pd
import pytest

from anomalyops.lake import Lake
from anomalyops.spec import load_spec
from anomalyops.validation.schema import check_schema_matches_spec, load_schema
from anomalyops_cli.main import main
from tests.helpers.common import REPO_ROOT

NAB = REPO_ROOT / "bench" / "data" / "nab" / "machine_temperature_system_failure.csv"


@pytest.fixture
def nab_csv(tmp_path):
    """Four days (plus the partial first one) of NAB machine temperature, as the user has it."""
    lines = NAB.read_text().splitlines()[: 1 + 33 + 4 * 288]
    path = tmp_path / "machine temp.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_init_writes_spec_schema_and_landing_days(settings_env, tmp_path, nab_csv, capsys):
    settings = settings_env()
    spec_out, schema_out = tmp_path / "cfg" / "mt.yaml", tmp_path / "cfg" / "mt.pbtxt"
    args = ["init", "--from", str(nab_csv), "--spec-out", str(spec_out)]
    args += ["--schema-out", str(schema_out), "--no-compile"]

    assert main([*args, "--dry-run"]) == 0
    assert "dry run: nothing written" in capsys.readouterr().out
    assert not spec_out.exists() and not (tmp_path / "lake" / "landing").exists()

    assert main(args) == 0
    out = capsys.readouterr().out
    spec = load_spec(spec_out)
    assert spec.name == "machine_temp"
    assert spec.timestamp.column == "timestamp" and spec.label is None
    assert spec.feature_names == ["value"]
    series = pd.read_csv(nab_csv)["value"]
    assert spec.feature("value").min < series.min() < series.max() < spec.feature("value").max

    schema = load_schema(schema_out)
    assert check_schema_matches_spec(schema, spec) == []
    value = next(f for f in schema.feature if f.name == "value")
    assert value.float_domain.max == pytest.approx(spec.feature("value").max)

    lake = Lake(settings.lake_root)
    days = sorted(p.rsplit("/", 1)[-1] for p in lake.fs.ls(f"{lake.root}/landing"))
    assert days == [(dt.date(2013, 12, 2) + dt.timedelta(days=i)).isoformat() for i in range(5)]
    day = pd.read_parquet(f"{lake.root}/landing/2013-12-03/history.parquet")
    assert len(day) == 288 and list(day.columns) == ["timestamp", "value"]
    assert f"ANOMALYOPS_FEATURE_SPEC_PATH={spec_out}" in out
    assert "ANOMALYOPS_START_DATE=2013-12-02" in out
    assert "anomalyops ingest-days 2013-12-02 2013-12-06" in out

    # A second run refuses to overwrite anything without --force.
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "refusing to overwrite" in err and str(spec_out) in err and "2013-12-02" in err
    assert main([*args, "--force"]) == 0


def test_init_bad_file_names_file_column_and_row(settings_env, tmp_path, capsys):
    settings_env()
    bad = tmp_path / "bad.csv"
    rows = ["timestamp,value"] + [f"2026-01-01 00:{m:02d}:00,{m}.5" for m in range(40)]
    rows[13] = "2026-01-01 00:12:00,oops"
    bad.write_text("\n".join(rows) + "\n")
    assert main(["init", "--from", str(bad), "--no-compile", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: column 'value': not a number at row 13 (line 14): 'oops'" in err


def test_init_then_ingest_days_validates_the_users_days(
    airflow_db, settings_env, tmp_path, nab_csv, capsys, monkeypatch
):
    """The walk-through's next command: the landing days init wrote are complete (marked
    ``_READY``), so the ingest DAG takes them at once, through the gate, into validated/."""
    from anomalyops.lake import Zone

    settings = settings_env()
    spec_out, schema_out = tmp_path / "cfg" / "mt.yaml", tmp_path / "cfg" / "mt.pbtxt"
    args = ["init", "--from", str(nab_csv), "--spec-out", str(spec_out)]
    assert main([*args, "--schema-out", str(schema_out), "--no-compile"]) == 0
    capsys.readouterr()
    lake = Lake(settings.lake_root)
    assert lake.fs.exists(f"{lake.landing_path('2013-12-03')}/_READY")

    monkeypatch.setenv("ANOMALYOPS_FEATURE_SPEC_PATH", str(spec_out))
    monkeypatch.setenv("ANOMALYOPS_VALIDATION__SCHEMA_PATH", str(schema_out))
    monkeypatch.setenv("ANOMALYOPS_SOURCE", "landing")
    monkeypatch.setenv("ANOMALYOPS_START_DATE", "2013-12-02")
    assert main(["ingest-days", "2013-12-03", "2013-12-04"]) == 0
    out = capsys.readouterr().out
    assert "2 validated" in out, out
    assert lake.partitions(Zone.VALIDATED) == [dt.date(2013, 12, 3), dt.date(2013, 12, 4)]


def test_ingest_days_refuses_bad_ranges(capsys):
    with pytest.raises(SystemExit, match="'2013-13-01' is not a date"):
        main(["ingest-days", "2013-13-01"])
    assert main(["ingest-days", "2013-12-05", "2013-12-01"]) == 2
    assert "the last day 2013-12-01 is before the first 2013-12-05" in capsys.readouterr().err
    assert main(["ingest-days", "2000-01-01", "2020-01-01"]) == 2
    assert "at most 3660 at a time" in capsys.readouterr().err


def test_ingest_days_finds_the_project_airflow_without_exports(monkeypatch, tmp_path):
    """A shell without the walk-through's Airflow exports still reaches this checkout's DAGs
    (it used to fail with a KeyError on AIRFLOW__CORE__DAGS_FOLDER); the caller's own
    settings win."""
    import anomalyops_devtools.ingest_days as ingest_days

    seen = {}

    def fake_run_in_child(days, env, log_path, *, say):
        seen.update(env)
        return []

    monkeypatch.setattr(ingest_days, "run_in_child", fake_run_in_child)
    for name in list(os.environ):
        if name.startswith("AIRFLOW"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    assert main(["ingest-days", "2013-12-03"]) == 0
    assert seen["AIRFLOW__CORE__DAGS_FOLDER"].endswith("dags")
    assert seen["AIRFLOW_HOME"]
    assert seen["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
