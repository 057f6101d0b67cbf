"""The declarative feature spec: the one source of truth for columns.

GX expectations, the TFDV schema, Transform, the model and the scoring API all derive their
column lists from a :class:`FeatureSpec`; no other code names a dataset's columns.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]


class FeatureSpecError(ValueError):
    """The spec file is missing, not YAML, or names an invalid field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnRef(_Strict):
    column: Identifier


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

    @model_validator(mode="after")
    def _range_is_ordered(self) -> Feature:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self


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
