"""The whole training pipeline under LocalDagRunner on a tiny lake, three runs in one root.

1. days 1-2 validated, ``--backfill``: window = both days, no baseline -> blessed and pushed.
2. day 3 arrives: window = days 2-3, compared against run 1's blessed model -> pushed again.
3. day 4 arrives corrupted: two sensors read 4 sigma high all day (miscalibrated; the rows are
   labelled anomalous, as a later review would). Within the schema's ranges, so it passes the
   data checks; the candidate trained on it learns the offset as normal and ranks anomalies
   worse than the blessed model on the same rows -> not blessed, nothing pushed.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from anomalyops.lake import Lake, Zone
from anomalyops.settings import Settings, TrainingSettings
from anomalyops.sources.simulator import SimulatorConfig, simulate_day
from anomalyops.spec import load_spec
from tests.helpers.lake_data import days, write_schema

pytestmark = pytest.mark.timeout(1800)

SIM = SimulatorConfig(rows_per_day=288, anomaly_rate=0.05)
DAYS = days(dt.date(2026, 11, 1), 4)


def _gate_reports(root: Path) -> list[dict]:
    reports = sorted(
        (root / "EvaluationGate" / "blessing").glob("*/evaluation_report.json"),
        key=lambda p: int(p.parent.name),
    )
    return [json.loads(p.read_text()) for p in reports]


def _versions(serving: Path) -> list[int]:
    return sorted(int(p.name) for p in serving.iterdir() if p.name.isdigit())


def _corrupt(frame, spec):
    out = frame.copy()
    for name in spec.feature_names[:2]:
        feature = spec.feature(name)
        out[name] = np.clip(out[name] + 4 * out[name].std(), feature.min, feature.max)
    out[spec.label_column] = np.int8(1)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run the pipeline three times; return what each run left behind."""
    from anomalyops_tfx.runners import local_runner

    base = tmp_path_factory.mktemp("tfx-pipeline")
    spec = load_spec(Settings().feature_spec_path)
    settings = Settings(
        lake_root=str(base / "lake"),
        pipeline_root=base / "tfx",
        serving_model_dir=base / "serving" / "anomaly_detector",
        api_url=None,
        training=TrainingSettings(
            window_days=2,
            # Tiny windows (~470 train rows) need a faster learning rate to converge.
            epochs=60,
            batch_size=32,
            learning_rate=0.005,
            no_regression_margin=0.1,
            min_eval_rows=20,
        ),
    )
    lake = Lake(settings.lake_root)
    frames = {d: simulate_day(spec, d, SIM) for d in DAYS}
    schema = write_schema(spec, frames[DAYS[0]], base / "schema.pbtxt")
    serving = Path(settings.serving_model_dir)
    out = []
    for i, day in enumerate(DAYS[1:], start=1):
        if i == 1:
            lake.write_table(Zone.VALIDATED, DAYS[0], frames[DAYS[0]])
        frame = _corrupt(frames[day], spec) if day == DAYS[-1] else frames[day]
        lake.write_table(Zone.VALIDATED, day, frame)
        local_runner.run(settings, backfill=(i == 1), schema_path=str(schema))
        out.append(
            {
                "report": _gate_reports(settings.pipeline_root)[-1],
                "versions": _versions(serving),
            }
        )
    return {"settings": settings, "spec": spec, "serving": serving, "runs": out}


def test_first_run_trains_on_the_window_and_pushes_per_contract(runs):
    first = runs["runs"][0]
    report = first["report"]
    assert report["spans"] == [DAYS[0].isoformat(), DAYS[1].isoformat()]
    assert report["baseline"] is None
    assert report["blessed"] is True
    assert len(first["versions"]) == 1
    version_dir = runs["serving"] / str(first["versions"][0])
    for name in ("saved_model.pb", "variables/variables.index", "anomalyops_model.json"):
        assert (version_dir / name).exists(), name
    assert not list(runs["serving"].glob(".tmp-*"))
    meta = json.loads((version_dir / "anomalyops_model.json").read_text())
    assert set(meta) == {
        "model_name", "version", "created_at", "training_spans", "threshold",
        "threshold_quantile", "metrics", "feature_spec", "feature_spec_fingerprint",
        "pipeline_run_id", "evaluation_report",
    }  # fmt: skip
    assert meta["version"] == first["versions"][0]
    assert meta["model_name"] == "anomaly_detector"
    assert meta["training_spans"] == [DAYS[0].isoformat(), DAYS[1].isoformat()]
    assert meta["threshold"] == pytest.approx(report["threshold"])
    assert set(meta["metrics"]) == {"auc_pr", "f1", "false_alarm_rate", "missed_alarm_rate"}
    assert meta["feature_spec"]["features"][0]["name"] == runs["spec"].feature_names[0]
    assert meta["feature_spec_fingerprint"] == runs["spec"].fingerprint()
    assert meta["pipeline_run_id"]
    # The gate's HTML report travels with the version, named relative to its directory.
    assert meta["evaluation_report"] == "evaluation_report.html"
    page = (version_dir / meta["evaluation_report"]).read_text(encoding="utf-8")
    assert 'Evaluation gate: <span class="blessed">BLESSED' in page
    assert page.count("<svg") == 3  # histogram, PR curve (labelled), feature contributions
    assert "<script" not in page


def test_pushed_model_loads_without_tft_and_scores_with_calibrated_threshold(runs):
    version = runs["runs"][0]["versions"][0]
    version_dir = runs["serving"] / str(version)
    meta = json.loads((version_dir / "anomalyops_model.json").read_text())
    frame = simulate_day(runs["spec"], DAYS[0], SIM)
    columns = {n: frame[n].astype("float32").tolist() for n in runs["spec"].feature_names}
    code = textwrap.dedent(
        f"""
        import json, sys
        import tensorflow as tf
        model = tf.saved_model.load({str(version_dir)!r})
        fn = model.signatures["serving_default"]
        columns = json.loads(sys.stdin.read())
        out = fn(**{{k: tf.constant(v, tf.float32) for k, v in columns.items()}})
        print(json.dumps({{
            "tft_imported": "tensorflow_transform" in sys.modules,
            "inputs": sorted(fn.structured_input_signature[1]),
            "dtypes": {{k: v.dtype.name for k, v in out.items()}},
            "shapes": {{k: v.shape.as_list() for k, v in out.items()}},
            "threshold": float(out["threshold"].numpy()[0]),
            "alarm_rate": float(out["is_anomaly"].numpy().mean()),
            "consistent": bool(((out["anomaly_score"] > out["threshold"]) == out["is_anomaly"]).numpy().all()),
        }}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(columns),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["tft_imported"] is False
    assert result["inputs"] == sorted(runs["spec"].feature_names)
    assert result["dtypes"] == {
        "anomaly_score": "float32",
        "threshold": "float32",
        "is_anomaly": "bool",
        "feature_contributions": "float32",
    }
    n_inputs = len(runs["spec"].feature_names)
    assert result["shapes"].pop("feature_contributions") == [len(frame), n_inputs]
    assert all(shape == [len(frame)] for shape in result["shapes"].values())
    assert result["threshold"] == pytest.approx(meta["threshold"], rel=1e-6)
    assert result["consistent"]
    # Normal telemetry mostly stays under a 99th-percentile threshold.
    assert result["alarm_rate"] < 0.2


def test_second_run_compares_against_first_blessing_and_pushes_newer_version(runs):
    first, second = runs["runs"][0], runs["runs"][1]
    report = second["report"]
    assert report["spans"] == [DAYS[1].isoformat(), DAYS[2].isoformat()]
    assert report["baseline"] is not None
    assert report["baseline_model_id"] == first["report"]["candidate_model_id"]
    assert report["rule"] == "auc_pr_no_regression"
    assert report["blessed"] is True, report["reasons"]
    assert len(second["versions"]) == 2
    assert second["versions"][1] > second["versions"][0]


def test_model_trained_on_corrupted_data_is_not_pushed(runs):
    second, third = runs["runs"][1], runs["runs"][2]
    report = third["report"]
    assert report["baseline_model_id"] == second["report"]["candidate_model_id"]
    assert report["blessed"] is False, report
    assert report["candidate"]["metrics"]["auc_pr"] < report["baseline"]["metrics"]["auc_pr"]
    assert third["versions"] == second["versions"]
    assert not list(runs["serving"].glob(".tmp-*"))
    # The refusal is explained in the gate's HTML report, beside the baseline's PR curve.
    blessings = runs["settings"].pipeline_root / "EvaluationGate" / "blessing"
    newest = max(blessings.iterdir(), key=lambda p: int(p.name))
    page = (newest / "evaluation_report.html").read_text(encoding="utf-8")
    assert "NOT BLESSED" in page and 'class="curve baseline"' in page


def test_scoring_service_reloads_and_serves_the_pushed_version(runs, tmp_path):
    """The notifier's protocol against the real scoring app, with the models this test pushed."""
    import shutil

    pytest.importorskip("anomalyops_api")
    from fastapi.testclient import TestClient

    from anomalyops_api.main import create_app
    from anomalyops_api.settings import ApiSettings
    from anomalyops_tfx.components.serving_notifier import logic as notifier

    first, second = runs["runs"][1]["versions"]
    serving = tmp_path / "serving"
    serving.mkdir()
    shutil.copytree(runs["serving"] / str(first), serving / str(first))
    settings = ApiSettings(
        model_dir=serving,
        state_dir=tmp_path / "state",
        spool_dir=tmp_path,
        poll_interval_s=3600,  # only the reload request can bring the new version in
        admin_key="admin-secret",
        warmup_rows=16,
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/models").json()["active_version"] == first
        shutil.copytree(runs["serving"] / str(second), serving / f".tmp-{second}")
        (serving / f".tmp-{second}").rename(serving / str(second))
        served = notifier.notify_and_confirm(
            str(client.base_url), second, admin_key="admin-secret", timeout_s=60, client=client
        )
        assert served == second
        active = client.get("/v1/models/active").json()
        meta = json.loads((serving / str(second) / "anomalyops_model.json").read_text())
        assert active["threshold"] == pytest.approx(meta["threshold"])
        with pytest.raises(notifier.ServingNotConfirmed, match=r"40[13]"):
            notifier.notify_and_confirm(
                str(client.base_url), second, admin_key="wrong", timeout_s=5, client=client
            )
