"""Files users drop in ``landing/<YYYY-MM-DD>/``: read, checked against the spec, conformed.

Every problem names the file, the column and the row, because the person reading the alert
has to find the bad line in their own export.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

from anomalyops.spec import FeatureSpec

READABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet")
_MAX_EXAMPLES = 3


class IngestError(ValueError):
    """A source file cannot become a raw partition. ``problems`` lists every reason found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class SourceFile:
    name: str
    data: bytes


def read_file(file: SourceFile) -> pd.DataFrame:
    """Decode CSV (optionally gzipped) or Parquet into strings/values, without coercion."""
    name = file.name.lower()
    empty = not file.data if name.endswith(".parquet") else not file.data.strip()
    if empty:
        raise IngestError([f"{file.name}: the file is empty"])
    try:
        if name.endswith(".parquet"):
            return pd.read_parquet(io.BytesIO(file.data))
        compression = "gzip" if name.endswith(".gz") else None
        # dtype=str: coercion happens in conform(), where a failure can name its row.
        return pd.read_csv(
            io.BytesIO(file.data),
            dtype=str,
            compression=compression,
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8",
        )
    except UnicodeDecodeError as exc:
        raise IngestError([f"{file.name}: not UTF-8 text (byte {exc.start})"]) from None
    except pd.errors.EmptyDataError:
        raise IngestError([f"{file.name}: the file is empty"]) from None
    except pd.errors.ParserError as exc:
        raise IngestError([f"{file.name}: malformed CSV: {exc}"]) from None
    except Exception as exc:  # pyarrow raises several unrelated types for a bad Parquet file
        raise IngestError(
            [f"{file.name}: cannot read as {name.rsplit('.', 1)[-1]}: {exc}"]
        ) from None


def conform(df: pd.DataFrame, spec: FeatureSpec, *, source: str, csv: bool = False) -> pd.DataFrame:
    """Check and cast a decoded table to the spec's columns and types.

    Raises :class:`IngestError` naming the file, column and row of every problem found.
    """
    if len(df) == 0:
        raise IngestError([f"{source}: the file has a header but no rows"])
    missing = [c for c in spec.required_columns if c not in df.columns]
    if missing:
        raise IngestError(
            [
                f"{source}: missing column(s) {', '.join(map(repr, missing))}"
                f" (found: {', '.join(map(str, df.columns))})"
            ]
        )
    problems: list[str] = []
    out: dict[str, pd.Series] = {}

    ts_col = spec.timestamp.column
    ts = pd.to_datetime(df[ts_col], errors="coerce", utc=True)
    problems += _unparsable(df[ts_col], ts, source, ts_col, "timestamp", csv)
    out[ts_col] = ts
    if spec.entity:
        ent = df[spec.entity.column]
        problems += _nulls(ent, source, spec.entity.column, csv)
        out[spec.entity.column] = ent.astype("string").astype(object)
    for name in spec.feature_names:
        raw = df[name]
        values = pd.to_numeric(raw, errors="coerce") if raw.dtype == object else raw
        if not np.issubdtype(np.asarray(values).dtype, np.number) and values.dtype != bool:
            values = pd.to_numeric(raw.astype(str), errors="coerce")
        problems += _unparsable(raw, values, source, name, "number", csv)
        out[name] = values.astype("float64")
    label = spec.label_column
    if label and label in df.columns:
        lab = pd.to_numeric(df[label], errors="coerce")
        bad = lab.notna() & ~lab.isin([0, 1])
        problems += _unparsable(df[label], lab.where(~bad), source, label, "0 or 1", csv)
        out[label] = lab.fillna(0).astype("int8")
    if problems:
        raise IngestError(problems)
    return pd.DataFrame(out)


def _row_ref(i: int, csv: bool) -> str:
    return f"row {i + 1} (line {i + 2})" if csv else f"row {i + 1}"


def _unparsable(
    raw: pd.Series, parsed: pd.Series, source: str, column: str, kind: str, csv: bool
) -> list[str]:
    bad = np.flatnonzero(raw.notna().to_numpy() & parsed.isna().to_numpy())
    if len(bad) == 0:
        return []
    examples = ", ".join(f"{_row_ref(i, csv)}: {raw.iloc[i]!r}" for i in bad[:_MAX_EXAMPLES])
    more = f" and {len(bad) - _MAX_EXAMPLES} more" if len(bad) > _MAX_EXAMPLES else ""
    return [f"{source}: column {column!r}: not a {kind} at {examples}{more}"]


def _nulls(raw: pd.Series, source: str, column: str, csv: bool) -> list[str]:
    bad = np.flatnonzero(raw.isna().to_numpy())
    if len(bad) == 0:
        return []
    where = ", ".join(_row_ref(i, csv) for i in bad[:_MAX_EXAMPLES])
    return [
        f"{source}: column {column!r}: empty at {where}"
        + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    ]


def load_files(files: list[SourceFile], spec: FeatureSpec) -> pd.DataFrame:
    """Read, conform and concatenate a day's files; every file's problems are reported."""
    if not files:
        raise IngestError(["no files to ingest"])
    frames, problems = [], []
    for file in files:
        try:
            frames.append(
                conform(
                    read_file(file),
                    spec,
                    source=file.name,
                    csv=not file.name.lower().endswith(".parquet"),
                )
            )
        except IngestError as exc:
            problems += exc.problems
    if problems:
        raise IngestError(problems)
    return pd.concat(frames, ignore_index=True)
