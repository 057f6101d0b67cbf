"""evaluation_report.json as a typed model: the previous version's files read and write back
unchanged, and the model has exactly the keys the executor wrote."""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pytest

from anomalyops_tfx.components.evaluation_gate import logic
from anomalyops_tfx.components.evaluation_gate import report_html as rh
from anomalyops_tfx.components.evaluation_gate.report_model import (
    EvaluationReport,
    EvaluationVerdict,
    ModelEvaluation,
)
from tests.helpers.common import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "reports"
"""Reports written by the evaluation gate before it had a model (commit 38f09ba)."""
REPORT_FILES = sorted(FIXTURES.glob("evaluation_report_*.json"))


def _write(report: EvaluationReport) -> str:
    """What the executor writes for ``report``."""
    return json.dumps(logic.json_safe(report.to_json()), indent=2, allow_nan=False)


@pytest.mark.parametrize("path", REPORT_FILES, ids=lambda p: p.stem)
def test_a_previous_report_reads_and_writes_back_byte_for_byte(path):
    text = path.read_text()
    report = EvaluationReport.model_validate_json(text)
    assert report.model_extra == {} and report.candidate.model_extra == {}
    assert report.verdict == (
        EvaluationVerdict.BLESSED if json.loads(text)["blessed"] else EvaluationVerdict.NOT_BLESSED
    )
    assert _write(report) == text


def test_the_model_has_the_keys_the_executor_wrote_in_its_order():
    old = json.loads((FIXTURES / "evaluation_report_blessed_vs_baseline.json").read_text())
    assert list(EvaluationReport.model_fields) == list(old)
    assert list(ModelEvaluation.model_fields) == list(old["candidate"])
    assert list(old["candidate"]) == [f.name for f in fields(logic.Evaluation)]


def test_a_report_built_from_the_gates_logic_has_the_previous_shape():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(300, int), np.ones(10, int)]
    scores = np.abs(rng.normal(size=310)) + 3 * labels
    cand = logic.evaluate(scores, labels, 0.99)
    base = logic.with_served_threshold(
        logic.evaluate(scores * 1.1, labels, 0.99), scores, labels, 2.0
    )
    decision = logic.decide_blessing(cand, base, margin=0.02, stale_false_alarm_rate=0.05)
    values = {
        "blessed": decision.blessed, "rule": decision.rule, "reasons": decision.reasons,
        "candidate_model_uri": "/m/2", "candidate_model_id": 2, "baseline_model_uri": "/m/1",
        "baseline_model_id": 1, "candidate_is_baseline": False,
        "candidate": ModelEvaluation(**cand.to_dict()),
        "baseline": ModelEvaluation(**base.to_dict()), "threshold": cand.threshold,
        "threshold_quantile": 0.99, "margin": 0.02, "stale_false_alarm_rate": 0.05,
        "eval_split": "eval", "rows_dropped_missing_features": 0, "spans": ["2026-11-01"],
        "training_spans": ["2026-11-01", "2026-11-01"], "feature_spec_fingerprint": "abc",
        "pipeline_run_id": "run", "evaluated_at": "2026-11-02T00:00:00+00:00",
    }  # fmt: skip
    written = json.loads(_write(EvaluationReport(**values)))
    old = json.loads((FIXTURES / "evaluation_report_blessed_vs_baseline.json").read_text())

    def shape(obj):
        if isinstance(obj, dict):
            return {k: shape(v) for k, v in obj.items()}
        return type(obj).__name__ if obj is not None else None

    assert shape(written) == shape(old)
    assert isinstance(written["candidate"]["metrics"]["true_positives"], int)


def test_markdown_and_html_read_a_previous_report():
    report = EvaluationReport.model_validate_json(
        (FIXTURES / "evaluation_report_not_blessed.json").read_text()
    )
    md = logic.report_markdown(report)
    assert md.startswith("# Evaluation gate: NOT BLESSED") and "| auc_pr |" in md
    assert md == logic.report_markdown(report.to_json())
    scores = np.linspace(0.0, 20.0, 50)
    page = rh.build_html(report, scores, None, feature_names=["a"])
    assert "NOT BLESSED" in page and "threshold it is served with" in page
