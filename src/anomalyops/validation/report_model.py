"""The gate's record of a day (``reports/ds=<day>/gate.json``) as a typed model.

The JSON on disk keeps the shape the gate has always written: :meth:`GateReport.to_json`
dumps only the keys that were set (a report read from disk is written back with exactly its
own keys, an old one included) and keeps keys this model does not know. Findings that other
modules produce as plain dicts (failed expectations, TFDV anomalies, drift test entries) stay
dicts.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _StrEnum(str, Enum):
    def __str__(self) -> str:
        return self.value


class Verdict(_StrEnum):
    """The gate's decision: ``pass`` (clean), ``warn`` (valid but drifted; promoted with an
    email), ``fail`` (quarantined unless forced)."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


class Outcome(_StrEnum):
    """What was done with the day after the decision."""

    PENDING = "pending"
    PROMOTED = "promoted"
    QUARANTINED = "quarantined"


class _Record(BaseModel):
    # Unknown keys survive a read-modify-write; NaN stays NaN as it always did (json.dumps).
    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        validate_assignment=True,
        ser_json_inf_nan="constants",
    )

    def to_json(self) -> dict[str, Any]:
        """The JSON-able dict written to disk: the keys that were set, in field order."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True, fallback=str)


class SpecRef(_Record):
    name: str
    fingerprint: str


class Expectations(_Record):
    """Great Expectations' verdict; ``failed`` entries as :mod:`anomalyops.validation.gx` makes them."""

    evaluated: int | None = None
    success: bool | None = None
    failed: list[dict[str, Any]] = Field(default_factory=list)


class Tfdv(_Record):
    schema_path: str | None = Field(default=None, alias="schema")
    anomalies: list[dict[str, Any]] = Field(default_factory=list)


class DriftBlock(_Record):
    """The drift tests of the day (also ``tfdv/drift.json``, with ``ds``)."""

    baseline: str | None = None
    note: str | None = None
    method: str | None = None
    reference_days: list[str] = Field(default_factory=list)
    alpha: float | None = None
    restart: bool = False
    restart_score: float | None = None
    scores: list[dict[str, Any]] = Field(default_factory=list)
    """One entry per test: ``feature``, ``comparator``, ``value``, ``threshold``, ``drifted``
    (plus ``p_value``, ``alpha``, ``restart``, ``policy`` ... from the calibrated tests)."""


class ReportLinks(_Record):
    """Where the day's reports are (URIs); the TFDV ones are missing on a day with no rows."""

    gate: str | None = None
    data_docs: str | None = None
    gx_result: str | None = None
    statistics_html: str | None = None
    statistics: str | None = None
    anomalies: str | None = None
    drift: str | None = None


class AlertRecord(_Record):
    """One alert email about the day, as :func:`anomalyops.alerts.send` delivered it."""

    kind: str
    to: list[str] | None = None
    subject: str | None = None
    at: str | None = None
    server: str | None = None
    sent: bool | None = None
    error: str | None = None


class Override(_Record):
    """A forced re-admission: who, when, why, and what the gate said."""

    by: str | None = None
    at: str | None = None
    reason: str | None = None
    overridden_decision: Verdict | None = None
    overridden_reasons: list[str] = Field(default_factory=list)


class GateReport(_Record):
    """``gate.json``: the gate's decision about one day and what was done with it."""

    ds: str
    decision: Verdict
    outcome: Outcome = Outcome.PENDING
    reasons: list[str] = Field(default_factory=list)
    checked_at: str | None = None
    rows: int | None = None
    spec: SpecRef | None = None
    expectations: Expectations = Field(default_factory=Expectations)
    tfdv: Tfdv = Field(default_factory=Tfdv)
    drift: DriftBlock = Field(default_factory=DriftBlock)
    reports: ReportLinks = Field(default_factory=ReportLinks)
    timings: dict[str, float] = Field(default_factory=dict)
    alerts: list[AlertRecord] = Field(default_factory=list)
    override: Override | None = None
    promoted_at: str | None = None
    validated_path: str | None = None
    quarantine_path: str | None = None
