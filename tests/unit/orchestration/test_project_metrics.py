"""The project's metrics through Airflow's Stats (anomalyops_airflow.metrics): what a gate run,
a promotion, an evaluation and a push emit, that they reach OpenTelemetry under the names the
dashboard queries, and that a broken metrics backend never fails a task."""

from __future__ import annotations

import json
import logging

import pytest

from anomalyops.validation.report_model import GateReport
from anomalyops_airflow import metrics

DRIFT_SCORES = [
    # Two tests of one feature: the larger ratio counts.
    {"feature": "temp", "comparator": "ks_2samp", "value": 0.5, "threshold": 1.0, "drifted": False},
    {"feature": "temp", "comparator": "ks_resid", "value": 0.9, "threshold": 0.6, "drifted": True},
    {"feature": "rpm", "comparator": "ks_2samp", "value": 0.2, "threshold": 0.8, "drifted": False},
    # Unusable entries say nothing.
    {"feature": "rpm", "comparator": "x", "value": None, "threshold": 0.8, "drifted": False},
    {"feature": "rpm", "comparator": "y", "value": 1.0, "threshold": 0.0, "drifted": False},
    {"comparator": "no feature", "value": 9.0, "threshold": 1.0, "drifted": True},
]


def _gate(decision: str = "warn", **drift) -> GateReport:
    return GateReport.model_validate(
        {
            "ds": "2026-11-20",
            "decision": decision,
            "rows": 1440,
            "drift": {"scores": DRIFT_SCORES, "restart": True, **drift},
        }
    )


class Recorder:
    """Stands in for airflow.stats.Stats."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float, dict]] = []

    def incr(self, name, count=1, rate=1, *, tags=None):
        self.calls.append(("incr", name, count, tags or {}))

    def gauge(self, name, value, rate=1, delta=False, *, tags=None):
        self.calls.append(("gauge", name, value, tags or {}))


@pytest.fixture
def stats(monkeypatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(metrics, "_stats", lambda: recorder)
    return recorder


def test_a_gate_run_emits_its_decision_and_the_days_drift(stats):
    metrics.gate_checked(_gate())
    calls = {
        (kind, name, tuple(sorted(tags.items()))): value for kind, name, value, tags in stats.calls
    }
    assert calls == {
        ("incr", "anomalyops.gate_decisions", (("decision", "warn"),)): 1,
        ("gauge", "anomalyops.gate_rows", ()): 1440.0,
        ("gauge", "anomalyops.gate_drifted_features", ()): 1.0,  # temp; the unnamed entry not
        ("gauge", "anomalyops.gate_drift_restart", ()): 1.0,
        ("gauge", "anomalyops.gate_drift_ratio", (("feature", "temp"),)): pytest.approx(1.5),
        ("gauge", "anomalyops.gate_drift_ratio", (("feature", "rpm"),)): pytest.approx(0.25),
        ("gauge", "anomalyops.gate_drift_max_ratio", ()): pytest.approx(1.5),
    }


def test_a_day_without_drift_tests_emits_no_ratio(stats):
    gate = GateReport.model_validate({"ds": "2026-11-02", "decision": "pass"})
    metrics.gate_checked(gate)
    names = [name for _, name, _, _ in stats.calls]
    assert "anomalyops.gate_drift_max_ratio" not in names
    assert "anomalyops.gate_drift_ratio" not in names
    assert "anomalyops.gate_rows" not in names  # unknown, not 0
    assert ("incr", "anomalyops.gate_decisions", 1, {"decision": "pass"}) in stats.calls


def test_promotion_counts_a_day(stats):
    metrics.day_promoted()
    assert stats.calls == [("incr", "anomalyops.days_promoted", 1, {})]


def test_the_evaluation_gate_emits_its_outcome_and_the_candidates_metrics(stats, tmp_path):
    report = {
        "blessed": False,
        "rule": "f1",
        "candidate": {"metrics": {"f1": 0.4, "auc_pr": 0.55, "recall": float("nan"), "x": None}},
    }
    (tmp_path / "evaluation_report.json").write_text(json.dumps(report))
    metrics.node_ran("EvaluationGate", {"blessing": [str(tmp_path)]})
    assert stats.calls == [
        ("incr", "anomalyops.evaluation_outcomes", 1, {"outcome": "not_blessed", "rule": "f1"}),
        ("gauge", "anomalyops.candidate_metric", 0.4, {"metric": "f1"}),
        ("gauge", "anomalyops.candidate_metric", 0.55, {"metric": "auc_pr"}),
    ]


def test_a_push_emits_the_versions_metrics(stats, tmp_path):
    meta = {"version": 1764230400, "threshold": 2.5, "metrics": {"auc_pr": 0.8, "f1": 0.7}}
    (tmp_path / "anomalyops_model.json").write_text(json.dumps(meta))
    metrics.node_ran("Pusher", {"pushed_model": [str(tmp_path)]})
    version = {"version": "1764230400"}
    assert stats.calls == [
        ("incr", "anomalyops.model_pushes", 1, {}),
        ("gauge", "anomalyops.pushed_version", 1764230400.0, {}),
        ("gauge", "anomalyops.pushed_model_metric", 0.8, {**version, "metric": "auc_pr"}),
        ("gauge", "anomalyops.pushed_model_metric", 0.7, {**version, "metric": "f1"}),
        ("gauge", "anomalyops.pushed_model_metric", 2.5, {**version, "metric": "threshold"}),
    ]


def test_a_declined_push_and_other_nodes_emit_nothing(stats, tmp_path):
    metrics.node_ran("Pusher", {"pushed_model": [str(tmp_path)]})  # no metadata: not pushed
    metrics.node_ran("Trainer", {"model": [str(tmp_path)]})
    metrics.node_ran("EvaluationGate", {})
    assert stats.calls == []


def test_a_failing_metrics_backend_never_fails_the_task(monkeypatch, tmp_path, caplog):
    class Broken:
        def incr(self, *a, **k):
            raise OSError("collector on fire")

        gauge = incr

    monkeypatch.setattr(metrics, "_stats", lambda: Broken())
    (tmp_path / "evaluation_report.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger=metrics.__name__):
        metrics.gate_checked(_gate())
        metrics.day_promoted()
        metrics.node_ran("EvaluationGate", {"blessing": [str(tmp_path)]})
    assert len([r for r in caplog.records if "the task goes on" in r.getMessage()]) == 3


def test_the_names_reach_opentelemetry_as_declared(monkeypatch, tmp_path):
    """Through Airflow's own OpenTelemetry logger (what OTEL_ON=True builds), into an
    in-memory reader: every emitted name and attribute set is a declared one."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from anomalyops_airflow import compat

    class Reader(InMemoryMetricReader):
        """Keeps every export: Airflow 3's gauges are synchronous, reported by the one flush
        after they were set (metrics._flush after each emit), not again at a later read."""

        exports: list = []

        def _receive_metrics(self, metrics_data, *args, **kwargs) -> None:
            self.exports.append(metrics_data)

    reader = Reader()
    provider = MeterProvider(metric_readers=[reader])
    if compat.AIRFLOW_3:
        # The task SDK's Stats is a facade over one module-level backend.
        from airflow.sdk._shared.observability.metrics import stats
        from airflow.sdk._shared.observability.metrics.otel_logger import SafeOtelLogger

        target, attr = stats, "_backend"
    else:
        from airflow.metrics.otel_logger import SafeOtelLogger

        # On Stats itself: once Airflow has used Stats (any dag.test earlier in the session),
        # its metaclass has cached the logger there, shadowing the metaclass attribute.
        target, attr = compat.Stats, "instance"
    monkeypatch.setattr(target, attr, SafeOtelLogger(provider, metrics.STATS_PREFIX), raising=False)
    assert compat.stats_logger().otel is provider
    metrics.gate_checked(_gate())
    metrics.day_promoted()
    (tmp_path / "evaluation_report.json").write_text(
        json.dumps({"blessed": True, "rule": "sanity", "candidate": {"metrics": {"f1": 0.5}}})
    )
    (tmp_path / "anomalyops_model.json").write_text(
        json.dumps({"version": 7, "threshold": 1.0, "metrics": {"f1": 0.5}})
    )
    metrics.node_ran("EvaluationGate", {"blessing": [str(tmp_path)]})
    metrics.node_ran("Pusher", {"pushed_model": [str(tmp_path)]})

    seen: dict[str, set[tuple[str, ...]]] = {}
    reader.collect()
    for rm in [rm for data in reader.exports if data for rm in data.resource_metrics]:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for point in m.data.data_points:
                    seen.setdefault(m.name, set()).add(tuple(sorted(point.attributes)))
    declared = {f"{metrics.STATS_PREFIX}.{m.name}": m for m in metrics.PROJECT_METRICS}
    assert set(seen) == set(declared)  # everything declared is emitted, nothing else
    for name, label_sets in seen.items():
        assert label_sets == {tuple(sorted(declared[name].labels))}, name


def test_prometheus_names_follow_the_collectors_rules():
    assert metrics.GATE_DECISIONS.prometheus_name == "airflow_anomalyops_gate_decisions_total"
    assert metrics.GATE_DRIFT_MAX_RATIO.prometheus_name == "airflow_anomalyops_gate_drift_max_ratio"
    names = [m.prometheus_name for m in metrics.PROJECT_METRICS + metrics.AIRFLOW_METRICS]
    assert len(set(names)) == len(names)


def _emitted_by_airflow(name: str, source: str) -> bool:
    """``name`` as a Stats call's literal, where any dotted part may be an f-string field
    (``f"dagrun.duration.{self.state}"`` emits ``dagrun.duration.success``)."""
    import re

    parts = [rf"(?:{re.escape(part)}|\{{[^}}]+\}})" for part in name.split(".")]
    # Airflow 2 calls the ``Stats`` class, Airflow 3 its ``stats`` module.
    call = r"[Ss]tats\.(?:incr|gauge|timing|timer)\(\s*f?[\"']"
    return re.search(call + r"\.".join(parts) + r"[\"']", source) is not None


def test_airflow_still_emits_the_metrics_the_dashboard_reads():
    from pathlib import Path

    import airflow

    source = "\n".join(
        p.read_text(encoding="utf-8", errors="replace")
        for p in Path(airflow.__file__).parent.rglob("*.py")
        if "tats." in p.read_text(encoding="utf-8", errors="replace")
    )
    missing = [m.name for m in metrics.AIRFLOW_METRICS if not _emitted_by_airflow(m.name, source)]
    assert missing == []
    assert not _emitted_by_airflow("dagrun.durashun.success", source)  # a misspelt part
    # Not "ti.finished": Airflow 3 emits f"ti.{state}" gauges, which a field part matches.
    assert not _emitted_by_airflow("scheduler_heart_beat", source)
