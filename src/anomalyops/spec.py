"""The declarative feature spec: the one source of truth for columns.

GX expectations, the TFDV schema, Transform, the model and the scoring API all derive their
column lists from a :class:`FeatureSpec`; no other code names a dataset's columns.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal, NamedTuple

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]


class FeatureSpecError(ValueError):
    """The spec file is missing, not YAML, or names an invalid field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnRef(_Strict):
    column: Identifier


MAX_TEMPORAL_ROWS = 10_000
"""Largest lag or window: history is carried in memory per entity, in ingest and the API."""


class Temporal(_Strict):
    """A derived column computed from a feature's preceding rows of the same entity, ordered by
    the timestamp (``anomalyops.temporal``): ``diff`` (x - x ``lag`` rows earlier),
    ``rolling_dev`` (x - the mean of the last ``window`` rows, this one included) or
    ``rolling_std`` (population std of the last ``window`` rows: 0 for a stuck sensor)."""

    kind: Literal["diff", "rolling_dev", "rolling_std"]
    lag: int | None = Field(default=None, ge=1, le=MAX_TEMPORAL_ROWS)
    """Rows back for ``diff`` (default 1)."""
    window: int | None = Field(default=None, ge=2, le=MAX_TEMPORAL_ROWS)
    """Rows in the window, the current one included, for ``rolling_*`` (required)."""

    @model_validator(mode="after")
    def _size_fits_kind(self) -> Temporal:
        if self.kind == "diff" and self.window is not None:
            raise ValueError("diff takes lag (rows back), not window")
        if self.kind != "diff" and self.lag is not None:
            raise ValueError(f"{self.kind} takes window (rows), not lag")
        if self.kind != "diff" and self.window is None:
            raise ValueError(f"{self.kind} needs window (rows, >= 2)")
        return self

    @property
    def rows(self) -> int:
        """The lag, or the window."""
        return (self.lag or 1) if self.kind == "diff" else int(self.window or 0)

    @property
    def history(self) -> int:
        """Preceding rows of the same entity the value needs."""
        return self.rows if self.kind == "diff" else self.rows - 1

    def column(self, feature: str) -> str:
        return f"{feature}__{self.kind}_{self.rows}"


class Derived(NamedTuple):
    """A derived model input: its column name, the feature it reads, and how."""

    name: str
    feature: str
    temporal: Temporal


class Feature(_Strict):
    name: Identifier
    dtype: Literal["float"] = "float"
    unit: str | None = None
    description: str | None = None
    min: float | None = None
    """Smallest plausible value; outside [min, max] the gate rejects the row."""
    max: float | None = None
    max_null_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    drift_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """Smallest shift that counts as drift for this feature: a two-sample KS statistic against
    the gate's reference days, on top of statistical significance (docs/validation.md). None:
    the spec's ``default_drift_threshold``."""
    temporal: list[Temporal] = Field(default_factory=list, max_length=16)
    """Derived columns from this feature's preceding rows (docs/pipeline.md, Temporal context)."""

    @model_validator(mode="after")
    def _range_is_ordered(self) -> Feature:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        names = [t.column(self.name) for t in self.temporal]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"temporal derivations declared twice: {', '.join(twice)}")
        return self

    @model_serializer(mode="wrap")
    def _omit_empty_temporal(self, handler: SerializerFunctionWrapHandler) -> dict:
        # A spec without derivations dumps (and fingerprints) exactly as before they existed.
        out = handler(self)
        if not self.temporal:
            out.pop("temporal", None)
        return out


class RowCount(_Strict):
    min: int = Field(default=1, ge=1)
    max: int | None = Field(default=None, ge=1)


class FeatureSpec(_Strict):
    name: Identifier
    description: str | None = None
    timestamp: ColumnRef
    entity: ColumnRef | None = None
    label: ColumnRef | None = None
    """Ground truth (1 = anomaly) for evaluation only; never a model input."""
    features: list[Feature] = Field(min_length=1)
    rows_per_day: RowCount = RowCount()
    default_drift_threshold: float = Field(default=0.0, ge=0.0, le=1.0)
    """Smallest KS statistic that counts as drift for features without their own; 0: every
    statistically significant shift does (the gate's p-values already account for the day's
    size, so this is only for ignoring small real shifts on very large days)."""

    @model_validator(mode="after")
    def _columns_are_distinct(self) -> FeatureSpec:
        seen: dict[str, str] = {}
        for role, column in self._roles():
            if column in seen:
                raise ValueError(f"column {column!r} is used as both {seen[column]} and {role}")
            seen[column] = role
        for d in self.derived_columns:
            if d.name in seen:
                raise ValueError(
                    f"derived column {d.name!r} (feature {d.feature!r}, {d.temporal.kind}) "
                    f"clashes with the {seen[d.name]} column"
                )
        return self

    def _roles(self) -> list[tuple[str, str]]:
        roles = [("timestamp", self.timestamp.column)]
        if self.entity:
            roles.append(("entity", self.entity.column))
        if self.label:
            roles.append(("label", self.label.column))
        roles += [(f"feature {f.name!r}", f.name) for f in self.features]
        return roles

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def derived_columns(self) -> list[Derived]:
        """The features' temporal derivations, in spec order."""
        return [Derived(t.column(f.name), f.name, t) for f in self.features for t in f.temporal]

    @property
    def model_columns(self) -> list[str]:
        """What the model reads: the features, then the derived columns (never key or label).
        GX, the TFDV schema, Transform and the model's signature all take this list."""
        return [*self.feature_names, *(d.name for d in self.derived_columns)]

    @property
    def history_rows(self) -> int:
        """Preceding rows per entity the longest derivation needs (0: the spec is row-wise)."""
        return max((d.temporal.history for d in self.derived_columns), default=0)

    @property
    def key_columns(self) -> list[str]:
        """Columns that identify a row in outputs: entity (if any), then timestamp."""
        return ([self.entity.column] if self.entity else []) + [self.timestamp.column]

    @property
    def label_column(self) -> str | None:
        return self.label.column if self.label else None

    @property
    def required_columns(self) -> list[str]:
        """Columns every input file must carry (the label is optional in inputs)."""
        return [*self.key_columns, *self.feature_names]

    @property
    def all_columns(self) -> list[str]:
        return [column for _, column in self._roles()]

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def drift_threshold(self, name: str) -> float:
        """The feature's minimum drift effect (KS statistic)."""
        own = self.feature(name).drift_threshold
        return self.default_drift_threshold if own is None else own

    def fingerprint(self) -> str:
        """A short stable hash, so models and reports can say which spec they were built for."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def parse_spec(data: object, *, source: str = "<spec>") -> FeatureSpec:
    """Validate a decoded spec, raising :class:`FeatureSpecError` that names the bad field."""
    if not isinstance(data, dict):
        raise FeatureSpecError(f"{source}: the spec must be a mapping, got {type(data).__name__}")
    try:
        return FeatureSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = _field_path(err["loc"], data) or "(top level)"
            problems.append(f"{where}: {err['msg']}")
        raise FeatureSpecError(
            f"{source}: invalid feature spec\n  " + "\n  ".join(problems)
        ) from None


def load_spec(path: str | Path) -> FeatureSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FeatureSpecError(f"feature spec not found: {path}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FeatureSpecError(f"{path}: not valid YAML: {exc}") from None
    return parse_spec(data, source=str(path))


def _field_path(loc: tuple, data: object) -> str:
    """``('features', 2, 'min')`` -> ``features[2].min`` (with the feature's name when known)."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            name = (
                node[item].get("name")
                if isinstance(node, list) and isinstance(node[item], dict)
                else None
            )
            parts[-1] += f"[{item}]" + (f" ({name})" if name else "")
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts)
