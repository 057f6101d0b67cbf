"""Bring your own data: from one or more exported files to a spec, a schema and landing days.

``anomalyops init --from FILE ...`` (the CLI orchestrates; this module does the work without
Airflow or TFX): the files are read with the landing zone's safe readers and limits (regular
files only, sizes capped, Parquet never unpickles), their columns typed and sorted into roles
(timestamp, entity, label, numeric features), a feature spec inferred for the user to review
(:func:`anomalyops.history.infer_spec`), and the history split into ``landing/<date>/`` days
(:func:`anomalyops.history.split_into_days`). Every problem names the file, the column and the
first bad row, as ingest's do.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd

from anomalyops.history import infer_spec, split_into_days
from anomalyops.lake import Lake, Zone
from anomalyops.sources.landing import IngestError, LandingFile, Limits
from anomalyops.sources.landing_read import (
    READABLE_SUFFIXES,
    _quote,
    conform,
    read_file,
)
from anomalyops.sources.landing_read import _row_ref as _file_row_ref
from anomalyops.spec import FeatureSpec, parse_spec

TIMESTAMP_NAMES = ("timestamp", "ts", "time", "datetime", "date_time", "event_time", "date")
LABEL_NAMES = ("label", "is_anomaly", "anomaly", "outlier", "is_outlier", "y", "target", "class")
ENTITY_NAMES = ("entity", "entity_id", "id", "station", "station_id", "device", "device_id",
                "machine", "machine_id", "host", "sensor", "sensor_id", "unit", "unit_id")  # fmt: skip
NUMERIC_SHARE = 0.9
"""A text column whose non-empty values are at least this share numbers is numeric with bad
values (an error naming the first bad row), not a text column."""
MAX_ENTITIES = 10_000
LANDING_FILE = "history.parquet"


class OnboardingError(ValueError):
    """The files cannot become a spec and landing days; ``problems`` names file, column, row."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass
class Plan:
    """What ``init`` inferred: the spec, the typed history and its days, and notes to review."""

    spec: FeatureSpec
    table: pd.DataFrame
    """The history conformed to the spec, exactly as ingest will read it back."""
    days: dict[dt.date, pd.DataFrame]
    sources: list[str]
    renamed: dict[str, str] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)
    """Columns left out of the spec, and why."""
    notes: list[str] = field(default_factory=list)

    @property
    def first_day(self) -> dt.date:
        return min(self.days)

    @property
    def last_day(self) -> dt.date:
        return max(self.days)


# -- reading ------------------------------------------------------------------------------
def read_sources(
    paths: list[Path | str], limits: Limits | None = None
) -> list[tuple[str, pd.DataFrame]]:
    """Decode each file (CSV, CSV.gz or Parquet) through the landing readers, within ``limits``.

    The total row count is capped at ``limits.max_rows`` too: the history is held in memory.
    """
    limits = limits or Limits()
    fs = fsspec.filesystem("file")
    out, problems, total = [], [], 0
    for raw in paths:
        path = Path(raw)
        name = str(raw)
        if not path.name.lower().endswith(READABLE_SUFFIXES):
            problems.append(f"{name}: not a CSV, CSV.gz or Parquet file (by its name)")
            continue
        if not path.exists():
            problems.append(f"{name}: no such file")
            continue
        try:
            df = read_file(LandingFile(name, fs, str(path.absolute())), limits)
        except IngestError as exc:
            problems += exc.problems
            continue
        if len(df) == 0:
            problems.append(f"{name}: the file has a header but no rows")
            continue
        total += len(df)
        if total > limits.max_rows:
            raise OnboardingError(
                [
                    f"{name}: refused: the files hold more than {limits.max_rows:,} rows together "
                    f"(ANOMALYOPS_INGEST__MAX_ROWS = {limits.max_rows:,}); onboard a shorter history"
                ]
            )
        out.append((name, df))
    if problems:
        raise OnboardingError(problems)
    if not out:
        raise OnboardingError(["no files given"])
    return out


def _row_ref(name: str, i: int) -> str:
    """The row as ingest's errors name it (CSV rows also by line, after the header)."""
    return _file_row_ref(i, csv=not name.lower().endswith(".parquet"))


def _combine(
    sources: list[tuple[str, pd.DataFrame]],
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """One table of every file's rows, with each row's file index and row number in its file."""
    columns = list(sources[0][1].columns)
    problems = []
    for name, df in sources[1:]:
        missing = [c for c in columns if c not in df.columns]
        extra = [c for c in df.columns if c not in columns]
        if missing or extra:
            what = []
            if missing:
                what.append(f"missing column(s) {', '.join(map(repr, missing))}")
            if extra:
                what.append(f"column(s) {', '.join(map(repr, extra))} not in {sources[0][0]}")
            problems.append(f"{name}: {'; '.join(what)} (every file needs the same columns)")
    if problems:
        raise OnboardingError(problems)
    dup = sorted({str(c) for c in columns if list(columns).count(c) > 1})
    if dup:
        raise OnboardingError([f"{sources[0][0]}: duplicate column name(s) {dup}"])
    frames = [df[columns].astype(object) if len(sources) > 1 else df for _, df in sources]
    table = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].copy()
    file_idx = np.concatenate([np.full(len(df), i) for i, (_, df) in enumerate(sources)])
    row_idx = np.concatenate([np.arange(len(df)) for _, df in sources])
    return table, file_idx, row_idx


def _parse_numeric(col: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(col):
        return col.astype("float64")
    if pd.api.types.is_numeric_dtype(col):
        return col.astype("float64")
    return pd.to_numeric(col.astype("string").str.strip(), errors="coerce").astype("float64")


def _parse_time(col: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(col):
        return pd.to_datetime(col, utc=True)
    return pd.to_datetime(col.astype(object), errors="coerce", utc=True)


def _first_bad(
    sources, file_idx, row_idx, raw: pd.Series, parsed: pd.Series, column: str, kind: str
) -> str | None:
    bad = np.flatnonzero(raw.notna().to_numpy() & parsed.isna().to_numpy())
    if len(bad) == 0:
        return None
    i = bad[0]
    name = sources[file_idx[i]][0]
    more = f" ({len(bad) - 1} more bad value(s))" if len(bad) > 1 else ""
    return (
        f"{name}: column {column!r}: not a {kind} at {_row_ref(name, row_idx[i])}: "
        f"{_quote(raw.iloc[i])}{more}"
    )


# -- inference ----------------------------------------------------------------------------
def plan_onboarding(
    sources: list[tuple[str, pd.DataFrame]],
    *,
    name: str,
    timestamp: str | None = None,
    entity: str | None = None,
    label: str | None = None,
    rows_per_day: int | None = None,
    start: dt.date | None = None,
    margin: float = 0.25,
) -> Plan:
    """Sort the columns into roles, infer the spec and split the history into days.

    With ``rows_per_day`` the table is treated as having no timestamp: rows get synthetic,
    evenly spaced timestamps, ``rows_per_day`` a day from ``start``, in file order.
    """
    table, file_idx, row_idx = _combine(sources)
    columns = [str(c) for c in table.columns]
    table.columns = columns
    for role, col in (("--timestamp", timestamp), ("--entity", entity), ("--label", label)):
        if col is not None and col not in columns:
            raise OnboardingError(
                [f"{sources[0][0]}: {role} {col!r} is not a column (found: {', '.join(columns)})"]
            )
    if rows_per_day is not None and timestamp is not None:
        raise OnboardingError(["give --timestamp or --rows-per-day, not both"])
    lower = {c.lower(): c for c in columns}
    problems: list[str] = []
    notes: list[str] = []
    ignored: dict[str, str] = {}

    # Timestamp: named, else a datetime-typed column, else a conventional name that parses.
    ts_values = None
    if rows_per_day is None:
        if timestamp is None:
            typed = [c for c in columns if pd.api.types.is_datetime64_any_dtype(table[c])]
            named = [lower[n] for n in TIMESTAMP_NAMES if n in lower]
            candidates = typed + [c for c in named if c not in typed]
            for c in candidates:
                parsed = _parse_time(table[c])
                if parsed.notna().sum() >= NUMERIC_SHARE * table[c].notna().sum() > 0:
                    timestamp = c
                    break
        if timestamp is None:
            raise OnboardingError(
                [
                    f"{sources[0][0]}: no timestamp column found (looked for a datetime column "
                    f"or one named {', '.join(TIMESTAMP_NAMES)}); name it with --timestamp COL, "
                    "or give --rows-per-day N (and --start-date) for a table without time"
                ]
            )
        ts_values = _parse_time(table[timestamp])
        bad = _first_bad(
            sources, file_idx, row_idx, table[timestamp], ts_values, timestamp, "timestamp"
        )
        if bad:
            problems.append(bad)
        empty = np.flatnonzero(table[timestamp].isna().to_numpy())
        if len(empty):
            i = empty[0]
            src = sources[file_idx[i]][0]
            problems.append(
                f"{src}: column {timestamp!r}: empty at {_row_ref(src, row_idx[i])}"
                + (f" ({len(empty) - 1} more)" if len(empty) > 1 else "")
            )

    # Label: named, else a conventionally named column holding only 0 and 1.
    if label is None:
        for n in LABEL_NAMES:
            c = lower.get(n)
            if c is None or c == timestamp:
                continue
            values = _parse_numeric(table[c])
            if values.notna().all() and values.isin([0, 1]).all():
                label = c
                notes.append(f"column {c!r} holds only 0/1: taken as the label (evaluation only)")
                break
    if label is not None:
        values = _parse_numeric(table[label])
        not01 = values.where(values.isin([0, 1]))
        bad = _first_bad(sources, file_idx, row_idx, table[label], not01, label, "0 or 1")
        if bad:
            problems.append(bad)

    # Every other column: a number (feature), text (entity or ignored), or bad numbers.
    numeric: dict[str, pd.Series] = {}
    text: list[str] = []
    for c in columns:
        if c in (timestamp, label):
            continue
        col = table[c]
        if c == entity:
            continue
        if pd.api.types.is_datetime64_any_dtype(col):
            ignored[c] = "a second date/time column"
            continue
        values = _parse_numeric(col)
        present = int(col.notna().sum())
        if present == 0:
            ignored[c] = "empty in every row"
            continue
        share = values.notna().sum() / present
        if share == 1.0:
            numeric[c] = values
        elif share >= NUMERIC_SHARE:
            problems.append(_first_bad(sources, file_idx, row_idx, col, values, c, "number"))
        else:
            text.append(c)
    if problems:
        raise OnboardingError(problems)

    if entity is None:
        named = [c for c in text if c.lower() in ENTITY_NAMES]
        if len(named) == 1 or len(text) == 1:
            c = named[0] if named else text[0]
            distinct = table[c].nunique(dropna=True)
            if distinct <= min(MAX_ENTITIES, max(1, len(table) // 2)) and table[c].notna().all():
                entity = c
                notes.append(
                    f"column {c!r} (text, {distinct} distinct values): taken as the entity"
                )
    for c in text:
        if c != entity:
            ignored[c] = "text (not a number); name it with --entity if it identifies a series"
    if entity is not None:
        empty = np.flatnonzero(table[entity].isna().to_numpy())
        if len(empty):
            i = empty[0]
            src = sources[file_idx[i]][0]
            raise OnboardingError(
                [f"{src}: column {entity!r}: empty at {_row_ref(src, row_idx[i])}"]
            )
    if not numeric:
        raise OnboardingError(
            [
                f"{sources[0][0]}: no numeric column to use as a feature (found: {', '.join(columns)})"
            ]
        )

    # Identifiers: the spec's column names must be identifiers; the landing files follow them.
    renamed: dict[str, str] = {}
    taken: set[str] = set()
    for c in [timestamp, entity, label, *numeric]:
        if c is None:
            continue
        ident = _identifier(c)
        while ident in taken:
            ident += "_"
        taken.add(ident)
        if ident != c:
            renamed[c] = ident
    ts_name = renamed.get(timestamp, timestamp) if timestamp else _free("timestamp", taken)

    typed = pd.DataFrame({renamed.get(c, c): v for c, v in numeric.items()})
    if ts_values is not None:
        typed.insert(0, ts_name, ts_values)
    if entity is not None:
        typed.insert(0, renamed.get(entity, entity), table[entity].astype("string").astype(object))
    if label is not None:
        typed[renamed.get(label, label)] = _parse_numeric(table[label]).fillna(0).astype("int8")

    features = list(
        typed.columns.difference(
            [ts_name, renamed.get(entity, entity), renamed.get(label, label)], sort=False
        )
    )
    spec = infer_spec(
        typed[features],
        name=name,
        timestamp=ts_name,
        label=renamed.get(label, label) if label else None,
        entity=renamed.get(entity, entity) if entity else None,
        margin=margin,
    )
    spec = _with_null_allowance(spec, typed)
    days = split_into_days(typed, spec, start=start, rows_per_day=rows_per_day)
    days = {d: conform(frame, spec, source=f"day {d}") for d, frame in days.items()}
    if rows_per_day is not None:
        notes.append(
            f"no timestamp used: {rows_per_day} rows a day get synthetic timestamps "
            f"{ts_name!r} from {start}, in file order"
        )
    key = [c for c in (spec.entity.column if spec.entity else None, spec.timestamp.column) if c]
    all_rows = pd.concat(days.values(), ignore_index=True)
    repeated = all_rows.duplicated(subset=key)
    if repeated.any():
        bad_days = sorted({t.date() for t in all_rows.loc[repeated, spec.timestamp.column]})
        listed = ", ".join(map(str, bad_days[:5])) + (" ..." if len(bad_days) > 5 else "")
        notes.append(
            f"{int(repeated.sum())} row(s) repeat a "
            f"{'(entity, timestamp)' if spec.entity else 'timestamp'} (on {listed}): the gate "
            "expects one row per entity and timestamp, so those days will fail it; deduplicate "
            "the export, or name the entity column with --entity"
        )
    for f in spec.features:
        if f.max_null_fraction:
            notes.append(
                f"feature {f.name!r} has empty values: max_null_fraction {f.max_null_fraction}"
            )
    return Plan(
        spec=spec,
        table=all_rows,
        days=days,
        sources=[n for n, _ in sources],
        renamed=renamed,
        ignored=ignored,
        notes=notes,
    )


def _with_null_allowance(spec: FeatureSpec, typed: pd.DataFrame) -> FeatureSpec:
    """Allow each feature twice its observed share of empty values (rounded up to 1 %)."""
    data = spec.model_dump(mode="json", exclude_none=True)
    changed = False
    for f in data["features"]:
        share = float(typed[f["name"]].isna().mean())
        if share > 0:
            f["max_null_fraction"] = min(1.0, math.ceil(share * 200) / 100)
            changed = True
    return parse_spec(data, source=f"inferred from {spec.name}") if changed else spec


def _identifier(text: str) -> str:
    ident = "".join(c if (c.isalnum() and c.isascii()) or c == "_" else "_" for c in str(text))
    ident = ident[:120]
    return ident if ident and not ident[0].isdigit() else f"f_{ident}"


def _free(base: str, taken: set[str]) -> str:
    name = base
    while name in taken:
        name += "_"
    return name


# -- writing ------------------------------------------------------------------------------
def spec_yaml(spec: FeatureSpec, plan: Plan | None = None) -> str:
    """The spec as YAML, with a header saying where it came from and what to review."""
    import yaml

    body = yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True), sort_keys=False)
    head = ["# Feature spec inferred by `anomalyops init`: review it before the first run."]
    if plan is not None:
        head.append(f"# From: {', '.join(plan.sources)}")
        head.append(
            f"# {len(plan.table):,} rows, {len(plan.days)} days ({plan.first_day} .. {plan.last_day})."
        )
        for old, new in plan.renamed.items():
            head.append(f"# column {old!r} is named {new!r} here (and in the landing files)")
        for col, why in plan.ignored.items():
            head.append(f"# left out: {col!r}: {why}")
    head.append(
        "# min/max are the history's range widened by 25 %: the gate rejects values outside."
    )
    return "\n".join(head) + "\n" + body


def existing_landing(lake: Lake, days) -> list[str]:
    """Landing folders among ``days`` that already hold files."""
    found = []
    for day in days:
        path = lake.landing_path(day)
        if lake.fs.exists(path) and lake.fs.ls(path, detail=False):
            found.append(lake.uri(path))
    return found


def validated_days(lake: Lake, days: int) -> tuple[list[dt.date], list[pd.DataFrame]]:
    """The newest ``days`` validated partitions of the lake (oldest first) and their tables."""
    dates = lake.partitions(Zone.VALIDATED)[-days:] if days > 0 else []
    if not dates:
        raise OnboardingError(
            [
                f"{lake.uri(lake.zone_path(Zone.VALIDATED))}: no validated days to infer a schema from"
            ]
        )
    return dates, [lake.read_table(Zone.VALIDATED, d) for d in dates]
