"""The project's own metrics, sent through Airflow's ``Stats`` so they travel with Airflow's.

Airflow already knows where metrics go (``[metrics]``: OpenTelemetry in the compose
``monitoring`` profile, docs/operations.md) and does nothing when they are off, so the task
adapters in :mod:`anomalyops_airflow.tasks` call the functions here unconditionally. A metric
is never worth a failed task: every function logs and returns on any error.

:data:`PROJECT_METRICS` and :data:`AIRFLOW_METRICS` name every series the Grafana dashboard
may query (``docker/monitoring/grafana/dashboards/``); ``tests/unit/deploy/test_monitoring.py``
checks the dashboard against them, and that Airflow still emits the ones listed as its own.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from anomalyops.validation.report_model import GateReport

log = logging.getLogger(__name__)

STATS_PREFIX = "airflow"
"""Airflow's default ``[metrics] otel_prefix`` (and ``statsd_prefix``); compose keeps it."""
FLUSH_TIMEOUT_MS = 5_000


@dataclass(frozen=True)
class Metric:
    name: str
    """As passed to ``Stats`` (Airflow adds :data:`STATS_PREFIX`)."""
    kind: Literal["counter", "gauge"]
    labels: tuple[str, ...] = ()
    help: str = ""

    @property
    def prometheus_name(self) -> str:
        """The series name after the OpenTelemetry Collector's Prometheus exporter: dots to
        underscores, ``_total`` on counters (monotonic sums); Airflow sets no units."""
        base = f"{STATS_PREFIX}.{self.name}".replace(".", "_").replace("-", "_")
        return base + "_total" if self.kind == "counter" else base


GATE_DECISIONS = Metric(
    "anomalyops.gate_decisions",
    "counter",
    ("decision",),
    "Days the quality gate judged, by decision (pass, warn, fail); a re-run counts again.",
)
GATE_ROWS = Metric("anomalyops.gate_rows", "gauge", (), "Rows of the last day the gate checked.")
GATE_DRIFTED_FEATURES = Metric(
    "anomalyops.gate_drifted_features",
    "gauge",
    (),
    "Features the drift test flagged on the last day the gate checked.",
)
GATE_DRIFT_RATIO = Metric(
    "anomalyops.gate_drift_ratio",
    "gauge",
    ("feature",),
    "Per feature, the largest drift statistic / its calibrated threshold on the last day "
    "checked (above 1 is drift); comparators differ in scale, the ratio does not.",
)
GATE_DRIFT_MAX_RATIO = Metric(
    "anomalyops.gate_drift_max_ratio",
    "gauge",
    (),
    "The largest gate_drift_ratio of the last day checked.",
)
GATE_DRIFT_RESTART = Metric(
    "anomalyops.gate_drift_restart",
    "gauge",
    (),
    "1 when the last day checked restarted the training window (a regime change).",
)
DAYS_PROMOTED = Metric(
    "anomalyops.days_promoted", "counter", (), "Days copied to validated/ (training input)."
)
EVALUATION_OUTCOMES = Metric(
    "anomalyops.evaluation_outcomes",
    "counter",
    ("outcome", "rule"),
    "Evaluation gate decisions on a candidate model: blessed or not_blessed, and the rule "
    "that decided (sanity, f1, auc_pr, ...).",
)
CANDIDATE_METRIC = Metric(
    "anomalyops.candidate_metric",
    "gauge",
    ("metric",),
    "The last candidate's evaluation metrics (f1, auc_pr, false_alarm_rate, ...), blessed or not.",
)
MODEL_PUSHES = Metric("anomalyops.model_pushes", "counter", (), "Model versions pushed.")
PUSHED_VERSION = Metric(
    "anomalyops.pushed_version", "gauge", (), "The last version the Pusher published."
)
PUSHED_MODEL_METRIC = Metric(
    "anomalyops.pushed_model_metric",
    "gauge",
    ("version", "metric"),
    "A pushed version's contract metrics (anomalyops_model.json: auc_pr, f1, "
    "false_alarm_rate, missed_alarm_rate) and its threshold.",
)

PROJECT_METRICS: tuple[Metric, ...] = (
    GATE_DECISIONS,
    GATE_ROWS,
    GATE_DRIFTED_FEATURES,
    GATE_DRIFT_RATIO,
    GATE_DRIFT_MAX_RATIO,
    GATE_DRIFT_RESTART,
    DAYS_PROMOTED,
    EVALUATION_OUTCOMES,
    CANDIDATE_METRIC,
    MODEL_PUSHES,
    PUSHED_VERSION,
    PUSHED_MODEL_METRIC,
)
"""What this module emits."""

AIRFLOW_METRICS: tuple[Metric, ...] = (
    # Timers arrive as gauges in seconds through Airflow's OpenTelemetry logger.
    Metric("dagrun.duration.success", "gauge", ("dag_id", "run_type"), "Successful DAG runs."),
    Metric("dagrun.duration.failed", "gauge", ("dag_id", "run_type"), "Failed DAG runs."),
    Metric("ti.finish", "counter", ("dag_id", "task_id", "state"), "Finished task instances."),
    Metric("ti.start", "counter", ("dag_id", "task_id"), "Started task instances."),
    Metric("scheduler_heartbeat", "counter", (), "Scheduler loop heartbeats."),
    Metric("dag_processing.import_errors", "gauge", (), "DAG files that failed to import."),
)
"""Airflow's own metrics the dashboard reads (Airflow's metrics docs list the rest)."""

# Node ids of tfx_components/anomalyops_tfx/pipeline.py (GATE_ID and the Pusher's), named here
# rather than imported so that emitting a metric never imports the TFX pipeline package.
EVALUATION_GATE_NODE = "EvaluationGate"
PUSHER_NODE = "Pusher"
EVALUATION_REPORT_FILE = "evaluation_report.json"


# -- emitting --------------------------------------------------------------------------------


def _stats():
    from anomalyops_airflow.compat import Stats

    return Stats


def _incr(metric: Metric, tags: Mapping[str, str] | None = None, count: int = 1) -> None:
    _stats().incr(metric.name, count, tags=dict(tags or {}))


def _gauge(metric: Metric, value: float, tags: Mapping[str, str] | None = None) -> None:
    _stats().gauge(metric.name, float(value), tags=dict(tags or {}))


def _flush() -> None:
    """Send now: task processes end (``os._exit`` after a fork) before Airflow's periodic
    OpenTelemetry export (60 s by default) would, and Airflow does not flush at exit."""
    from anomalyops_airflow.compat import stats_logger

    provider = getattr(stats_logger(), "otel", None)
    force_flush = getattr(provider, "force_flush", None)
    if callable(force_flush):
        force_flush(timeout_millis=FLUSH_TIMEOUT_MS)


def _emit(what: str, emit, *args: Any) -> None:
    try:
        emit(*args)
        _flush()
    except Exception:  # a metric is never worth a failed task
        log.warning("could not emit the %s metrics; the task goes on", what, exc_info=True)


# -- the quality gate ------------------------------------------------------------------------


def _ratio(entry: Mapping[str, Any]) -> float | None:
    value, threshold = entry.get("value"), entry.get("threshold")
    if not isinstance(value, (int, float)) or not isinstance(threshold, (int, float)):
        return None
    if threshold <= 0 or not math.isfinite(value) or not math.isfinite(threshold):
        return None
    return float(value) / float(threshold)


def drift_summary(scores: Iterable[Mapping[str, Any]]) -> tuple[dict[str, float], int]:
    """Per feature the largest value/threshold of its tests, and how many features drifted."""
    ratios: dict[str, float] = {}
    drifted: set[str] = set()
    for entry in scores:
        feature = str(entry.get("feature") or "")
        if not feature:
            continue
        if entry.get("drifted"):
            drifted.add(feature)
        ratio = _ratio(entry)
        if ratio is not None:
            ratios[feature] = max(ratio, ratios.get(feature, ratio))
    return ratios, len(drifted)


def _gate_checked(gate: GateReport) -> None:
    _incr(GATE_DECISIONS, {"decision": gate.decision.value})
    if gate.rows is not None:
        _gauge(GATE_ROWS, gate.rows)
    ratios, drifted = drift_summary(gate.drift.scores)
    _gauge(GATE_DRIFTED_FEATURES, drifted)
    _gauge(GATE_DRIFT_RESTART, 1 if gate.drift.restart else 0)
    for feature, ratio in ratios.items():
        _gauge(GATE_DRIFT_RATIO, ratio, {"feature": feature})
    if ratios:
        _gauge(GATE_DRIFT_MAX_RATIO, max(ratios.values()))


def gate_checked(gate: GateReport) -> None:
    """After ``validate``: the decision and the day's drift."""
    _emit("quality gate", _gate_checked, gate)


def day_promoted() -> None:
    """After ``promote``: one more day is training input."""
    _emit("promotion", _incr, DAYS_PROMOTED)


# -- the training pipeline -------------------------------------------------------------------


def _read_json(uri: str, name: str) -> dict | None:
    path = os.path.join(uri, name)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    return data if isinstance(data, dict) else None


def _numbers(values: Mapping[str, Any] | None) -> dict[str, float]:
    out = {}
    for key, value in (values or {}).items():
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if numeric and math.isfinite(value):
            out[str(key)] = float(value)
    return out


def _evaluated(blessing_uri: str) -> None:
    report = _read_json(blessing_uri, EVALUATION_REPORT_FILE)
    if report is None:
        log.info("no %s under %s; no evaluation metrics", EVALUATION_REPORT_FILE, blessing_uri)
        return
    outcome = "blessed" if report.get("blessed") else "not_blessed"
    _incr(EVALUATION_OUTCOMES, {"outcome": outcome, "rule": str(report.get("rule") or "none")})
    candidate = report.get("candidate") or {}
    for name, value in _numbers(candidate.get("metrics")).items():
        _gauge(CANDIDATE_METRIC, value, {"metric": name})


def _pushed(pushed_uri: str) -> None:
    from anomalyops.model_contract import METADATA_FILE

    metadata = _read_json(pushed_uri, METADATA_FILE)
    if metadata is None:  # the Pusher declined (not blessed): nothing was published
        return
    version = str(metadata.get("version"))
    _incr(MODEL_PUSHES)
    _gauge(PUSHED_VERSION, float(metadata["version"]))
    values = _numbers(metadata.get("metrics"))
    values.update(_numbers({"threshold": metadata.get("threshold")}))
    for name, value in values.items():
        _gauge(PUSHED_MODEL_METRIC, value, {"version": version, "metric": name})


def node_ran(node_id: str, outputs: Mapping[str, list[str]]) -> None:
    """After a TFX node ran: the evaluation gate's outcome, the pushed version's metrics."""
    if node_id == EVALUATION_GATE_NODE:
        for uri in outputs.get("blessing") or []:
            _emit("evaluation gate", _evaluated, uri)
    elif node_id == PUSHER_NODE:
        for uri in outputs.get("pushed_model") or []:
            _emit("push", _pushed, uri)
