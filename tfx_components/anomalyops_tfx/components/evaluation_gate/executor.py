"""Evaluation gate executor: score eval rows with the candidate and the blessed baseline."""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

import numpy as np
from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from anomalyops import model_contract as contract
from anomalyops.spec import FeatureSpec
from anomalyops_tfx.components.evaluation_gate import logic, report_html
from anomalyops_tfx.components.evaluation_gate.report_model import (
    EvaluationReport,
    ModelEvaluation,
)
from anomalyops_tfx.features import model_inputs, raw_parse_spec, spec_from_config

REPORT_JSON = "evaluation_report.json"
REPORT_MD = "evaluation_report.md"
REPORT_HTML = contract.EVALUATION_REPORT_FILE  # the Pusher ships it under this name
SERVING_SUBDIR = "Format-Serving"


def span_dates(examples: list[types.Artifact]) -> list[str]:
    """ISO dates of the Examples artifacts' spans (days since the epoch), oldest first."""
    spans = sorted({int(a.get_int_custom_property("span")) for a in examples})
    return [(dt.date(1970, 1, 1) + dt.timedelta(days=s)).isoformat() for s in spans]


def read_split(
    examples: list[types.Artifact], split: str, spec: FeatureSpec
) -> tuple[dict[str, np.ndarray], np.ndarray | None, int]:
    """(feature columns, labels or None, rows dropped for missing features) of one split."""
    import tensorflow as tf

    files = []
    for artifact in examples:
        uri = artifact_utils.get_split_uri([artifact], split)
        files += sorted(fileio.glob(os.path.join(uri, "*")))
    if not files:
        raise FileNotFoundError(f"no {split!r} Examples files in {[a.uri for a in examples]}")
    parse = raw_parse_spec(spec)
    names = model_inputs(spec)
    columns: dict[str, list] = {n: [] for n in names}
    labels: list[np.ndarray] = []
    label_missing = False
    for serialized in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(8192):
        parsed = tf.io.parse_example(serialized, parse)
        rows = int(serialized.shape[0])
        for n in names:
            dense = tf.sparse.to_dense(
                tf.SparseTensor(parsed[n].indices, parsed[n].values, [rows, 1]), float("nan")
            )
            columns[n].append(dense.numpy()[:, 0])
        if spec.label_column:
            label = parsed[spec.label_column]
            if int(tf.size(label.values)) != rows:
                label_missing = True
            else:
                labels.append(label.values.numpy())
    cols = {n: np.concatenate(v).astype(np.float32) for n, v in columns.items()}
    complete = np.all([np.isfinite(v) for v in cols.values()], axis=0)
    dropped = int(np.sum(~complete))
    cols = {n: v[complete] for n, v in cols.items()}
    y = None
    if spec.label_column and not label_missing and labels:
        y = np.concatenate(labels)[complete].astype(np.int64)
    return cols, y, dropped


def score_model(
    model: types.Artifact, columns: dict[str, np.ndarray], batch_size: int = 65536
) -> tuple[np.ndarray, np.ndarray | None]:
    """(anomaly scores, ``feature_contributions`` ``[rows, features]`` or None).

    Older models have no contributions output; the report then says so.
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(os.path.join(model.uri, SERVING_SUBDIR))
    fn = loaded.signatures[contract.SIGNATURE]
    explain = contract.EXPLANATION_OUTPUT in fn.structured_outputs
    n = len(next(iter(columns.values())))
    scores, contributions = [], []
    for start in range(0, n, batch_size):
        batch = {
            k: tf.constant(np.asarray(v[start : start + batch_size], dtype=np.float32))
            for k, v in columns.items()
        }
        out = fn(**batch)
        scores.append(out[contract.SCORE_OUTPUT].numpy())
        if explain:
            contributions.append(out[contract.EXPLANATION_OUTPUT].numpy())
    score = np.concatenate(scores).astype(np.float64) if scores else np.zeros(0)
    contrib = np.concatenate(contributions).astype(np.float64) if contributions else None
    return score, contrib


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        spec = spec_from_config(exec_properties["custom_config"])
        quantile = float(exec_properties["threshold_quantile"])
        margin = float(exec_properties["no_regression_margin"])
        stale = exec_properties.get("stale_false_alarm_rate")
        stale = None if stale is None else float(stale)
        min_rows = int(exec_properties["min_eval_rows"])
        split = exec_properties.get("eval_split") or "eval"

        examples = input_dict["examples"]
        candidate = artifact_utils.get_single_instance(input_dict["model"])
        baselines = input_dict.get("baseline_model") or []
        baseline = baselines[0] if baselines else None

        columns, labels, dropped = read_split(examples, split, spec)
        if dropped:
            logging.warning("Evaluation skips %d row(s) with missing feature values", dropped)
        cand_scores, cand_contrib = score_model(candidate, columns)
        cand_eval = logic.evaluate(cand_scores, labels, quantile)
        base_eval = None
        base_scores = None
        comparable = True
        if baseline is not None:
            base_scores, base_contrib = score_model(baseline, columns)
            comparable = (base_contrib is None) == (cand_contrib is None)
            base_eval = logic.evaluate(base_scores, labels, quantile)
            served = served_threshold(input_dict.get("baseline_blessing") or [])
            if served is not None:
                base_eval = logic.with_served_threshold(base_eval, base_scores, labels, served)
        decision = logic.decide_blessing(
            cand_eval,
            base_eval,
            margin=margin,
            min_rows=min_rows,
            stale_false_alarm_rate=stale,
            comparable_scores=comparable,
        )

        report = EvaluationReport(
            blessed=decision.blessed,
            rule=decision.rule,
            reasons=decision.reasons,
            candidate_model_uri=candidate.uri,
            candidate_model_id=candidate.id,
            baseline_model_uri=baseline.uri if baseline else None,
            baseline_model_id=baseline.id if baseline else None,
            # A cached Trainer hands the gate the model that is already blessed (and pushed).
            candidate_is_baseline=baseline is not None and baseline.id == candidate.id,
            candidate=ModelEvaluation(**cand_eval.to_dict()),
            baseline=ModelEvaluation(**base_eval.to_dict()) if base_eval else None,
            threshold=cand_eval.threshold,
            threshold_quantile=quantile,
            margin=margin,
            stale_false_alarm_rate=stale,
            eval_split=split,
            rows_dropped_missing_features=dropped,
            spans=span_dates(examples),
            training_spans=_span_range(span_dates(examples)),
            feature_spec_fingerprint=spec.fingerprint(),
            pipeline_run_id=self._context.pipeline_run_id if self._context else None,
            evaluated_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        with fileio.open(os.path.join(blessing.uri, REPORT_JSON), "w") as f:
            f.write(json.dumps(logic.json_safe(report.to_json()), indent=2, allow_nan=False))
        with fileio.open(os.path.join(blessing.uri, REPORT_MD), "w") as f:
            f.write(logic.report_markdown(report))
        html_path = write_html_report(
            blessing.uri,
            report,
            cand_scores,
            labels,
            feature_names=list(columns),
            contributions=cand_contrib,
            baseline_scores=base_scores,
        )
        # Evaluator's conventions, so LatestBlessedModelStrategy and Pusher-style readers work.
        marker = report.verdict.value
        with fileio.open(os.path.join(blessing.uri, marker), "w") as f:
            f.write("")
        blessing.set_int_custom_property("blessed", int(decision.blessed))
        blessing.set_string_custom_property("current_model", candidate.uri)
        blessing.set_int_custom_property("current_model_id", candidate.id)
        if baseline is not None:
            blessing.set_string_custom_property("baseline_model", baseline.uri)
            blessing.set_int_custom_property("baseline_model_id", baseline.id)
        if np.isfinite(cand_eval.threshold):
            blessing.set_float_custom_property("threshold", cand_eval.threshold)
        logging.info(
            "Evaluation gate: %s (%s)\n%s",
            marker,
            "; ".join(decision.reasons),
            logic.report_markdown(report),
        )
        if html_path:
            logging.info("Evaluation report (HTML, with plots): %s", html_path)


def write_html_report(
    directory: str, report: EvaluationReport, scores, labels, **kwargs
) -> str | None:
    """Write ``evaluation_report.html``; its path, or None when it could not be drawn.

    The blessing does not depend on the plots: a failure here is logged, not raised, and the
    Pusher then pushes without a report.
    """
    path = os.path.join(directory, REPORT_HTML)
    try:
        page = report_html.build_html(logic.json_safe(report.to_json()), scores, labels, **kwargs)
        with fileio.open(path, "w") as f:
            f.write(page)
    except Exception:
        logging.exception("Could not write the HTML evaluation report %s", path)
        return None
    return path


def served_threshold(blessings: list[types.Artifact]) -> float | None:
    """The threshold the baseline is served with: the one its blessing calibrated."""
    for blessing in blessings:
        if blessing.has_custom_property("threshold"):
            return float(blessing.get_float_custom_property("threshold"))
    return None


def _span_range(dates: list[str]) -> list[str]:
    return [dates[0], dates[-1]] if dates else []
