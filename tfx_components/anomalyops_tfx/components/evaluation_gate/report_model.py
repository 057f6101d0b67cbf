"""The evaluation gate's report (``evaluation_report.json`` in the blessing) as a typed model.

Plain pydantic, no TFX: the Pusher, tests and scripts can read a report anywhere. The JSON
keeps the shape the gate has always written (the verdict is the ``blessed`` bool on disk;
:attr:`EvaluationReport.verdict` names it); keys this model does not know are kept.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EvaluationVerdict(str, Enum):
    """The gate's verdict; the values are the marker files' names in the blessing."""

    BLESSED = "BLESSED"
    NOT_BLESSED = "NOT_BLESSED"

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        """For people: ``BLESSED`` / ``NOT BLESSED``."""
        return self.value.replace("_", " ")


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", ser_json_inf_nan="constants")

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-able data: the keys that were set (NaN stays a float NaN;
        :func:`logic.json_safe` makes it strict JSON)."""
        return self.model_dump(mode="json", exclude_unset=True)


class ModelEvaluation(_Record):
    """One model scored on the evaluation rows (:class:`logic.Evaluation`'s fields)."""

    rows: int | None = None
    threshold: float | None = None
    """None in the JSON when it was not finite."""
    metrics: dict[str, int | float | None] = Field(default_factory=dict)
    labelled: bool = False
    positives: int = 0
    scores_finite: bool = True
    served_threshold: float | None = None
    served_false_alarm_rate: float | None = None
    served_f1: float | None = None


class EvaluationReport(_Record):
    """``evaluation_report.json``: why the candidate was (not) blessed, with both evaluations."""

    blessed: bool
    rule: str = ""
    reasons: list[str] = Field(default_factory=list)
    candidate_model_uri: str | None = None
    candidate_model_id: int | None = None
    baseline_model_uri: str | None = None
    baseline_model_id: int | None = None
    candidate_is_baseline: bool = False
    """A cached Trainer hands the gate the model that is already blessed (and pushed)."""
    candidate: ModelEvaluation
    baseline: ModelEvaluation | None = None
    threshold: float | None = None
    threshold_quantile: float | None = None
    margin: float | None = None
    stale_false_alarm_rate: float | None = None
    eval_split: str = "eval"
    rows_dropped_missing_features: int = 0
    spans: list[str] = Field(default_factory=list)
    training_spans: list[str] = Field(default_factory=list)
    feature_spec_fingerprint: str | None = None
    pipeline_run_id: str | None = None
    evaluated_at: str | None = None

    @property
    def verdict(self) -> EvaluationVerdict:
        return EvaluationVerdict.BLESSED if self.blessed else EvaluationVerdict.NOT_BLESSED
