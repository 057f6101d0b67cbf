"""The GX expectation suite for a feature spec: generated from the spec, plus curated additions.

Generated: columns, types, null rates, ranges, timestamps inside the logical date, unique
timestamps per entity, row counts. Curated: ``gx/curated/<spec name>.yml`` (cross-column rules a
spec cannot express). Rebuilt on every run, so an edited spec is always honoured.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from anomalyops.spec import FeatureSpec

FEATURE_TYPES = ["float64", "float32"]
ENTITY_TYPES = ["str", "string", "object"]
LABEL_TYPES = ["int8", "int16", "int32", "int64", "Int8", "Int64"]


class CuratedExpectationsError(ValueError):
    """The curated additions file is not a list of ``{type, kwargs}`` GX expectations."""


def generated_expectations(spec: FeatureSpec) -> list[dict]:
    """The spec's expectations as GX configurations (``{"type", "kwargs", "meta"}``).

    The timestamp window uses suite parameters ``day_start``/``day_end`` bound per run.
    """
    ts = spec.timestamp.column
    out: list[dict] = []

    def add(type_: str, why: str, **kwargs) -> None:
        out.append(
            {"type": type_, "kwargs": kwargs, "meta": {"source": "feature_spec", "why": why}}
        )

    add(
        "expect_table_row_count_to_be_between",
        "rows_per_day bounds",
        min_value=spec.rows_per_day.min,
        max_value=spec.rows_per_day.max,
    )
    for column in spec.required_columns:
        add("expect_column_to_exist", "required column", column=column)
    for f in spec.features:
        add(
            "expect_column_values_to_be_in_type_list",
            "float feature",
            column=f.name,
            type_list=FEATURE_TYPES,
        )
        add(
            "expect_column_values_to_not_be_null",
            f"max_null_fraction {f.max_null_fraction}",
            column=f.name,
            mostly=round(1.0 - f.max_null_fraction, 6),
        )
        if f.min is not None or f.max is not None:
            add(
                "expect_column_values_to_be_between",
                "spec range",
                column=f.name,
                min_value=f.min,
                max_value=f.max,
            )
    for d in spec.derived_columns:
        add("expect_column_to_exist", f"temporal derivation of {d.feature}", column=d.name)
        # No null or range check: an entity's first rows have no history yet, and a range
        # on a difference or a spread would only restate the feature's own.
        add(
            "expect_column_values_to_be_in_type_list",
            "float derived column",
            column=d.name,
            type_list=FEATURE_TYPES,
        )
    if spec.entity:
        add(
            "expect_column_values_to_be_in_type_list",
            "string entity",
            column=spec.entity.column,
            type_list=ENTITY_TYPES,
        )
        add("expect_column_values_to_not_be_null", "key column", column=spec.entity.column)
    if spec.label:
        add(
            "expect_column_values_to_be_in_set",
            "binary label",
            column=spec.label.column,
            value_set=[0, 1],
        )
    add("expect_column_values_to_not_be_null", "key column", column=ts)
    # Also a type check: comparing with datetimes errors (and fails) on a non-datetime column.
    add(
        "expect_column_values_to_be_between",
        "timestamps inside the logical date",
        column=ts,
        min_value={"$PARAMETER": "day_start"},
        max_value={"$PARAMETER": "day_end"},
        strict_max=True,
    )
    if spec.entity:
        add(
            "expect_compound_columns_to_be_unique",
            "unique timestamp per entity",
            column_list=spec.key_columns,
        )
    else:  # GX's compound check needs two columns
        add("expect_column_values_to_be_unique", "unique timestamp", column=spec.timestamp.column)
    return out


def curated_path(gx_root: Path, spec: FeatureSpec) -> Path:
    return Path(gx_root) / "curated" / f"{spec.name}.yml"


def load_curated(gx_root: Path, spec: FeatureSpec) -> list[dict]:
    """The user's curated expectations for this spec (``gx/curated/<spec name>.yml``), if any."""
    path = curated_path(gx_root, spec)
    if not path.exists():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise CuratedExpectationsError(f"{path}: not valid YAML: {exc}") from None
    items = data.get("expectations") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise CuratedExpectationsError(f"{path}: expected a mapping with an 'expectations' list")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise CuratedExpectationsError(f"{path}: expectations[{i}] needs a 'type' string")
        kwargs = item.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise CuratedExpectationsError(f"{path}: expectations[{i}].kwargs must be a mapping")
        meta = {"source": "curated", **(item.get("meta") or {})}
        out.append({"type": item["type"], "kwargs": kwargs, "meta": meta})
    return out


def build_suite(spec: FeatureSpec, curated: list[dict]):
    """A GX ``ExpectationSuite`` named after the spec: generated + curated expectations."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    expectations = []
    for cfg in [*generated_expectations(spec), *curated]:
        try:
            conf = ExpectationConfiguration(
                type=cfg["type"], kwargs=cfg["kwargs"], meta=cfg["meta"]
            )
            expectations.append(conf.to_domain_obj())
        except Exception as exc:
            raise CuratedExpectationsError(f"invalid expectation {cfg['type']!r}: {exc}") from None
    return gx.ExpectationSuite(name=spec.name, expectations=expectations)
