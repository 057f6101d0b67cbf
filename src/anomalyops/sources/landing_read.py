"""Reading landed files: CSV (optionally gzipped) or Parquet, checked and conformed.

Every problem names the file, the column and the row, because the person reading the alert
has to find the bad line in their own export. Files are opened through
:mod:`anomalyops.sources.landing` (regular files only, within :class:`Limits`); CSV is
streamed from the file handle and Parquet read batch by batch, and a Parquet file carrying a
pickled extension type is refused (:mod:`anomalyops.parquet_safety`).
"""

from __future__ import annotations

import gzip
import io
import zlib
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from anomalyops import parquet_safety  # before any Parquet read: CVE-2023-47248
from anomalyops.sources.landing import GuardedStream, IngestError, Limits, Refused, Source
from anomalyops.spec import FeatureSpec

READABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet")
_MAX_EXAMPLES = 3
_MAX_QUOTE = 60
"""Characters of a bad value (or column name) quoted in a problem: a 50 MB cell stays out."""
_MAX_LISTED_COLUMNS = 20
_PARQUET_BATCH_ROWS = 65_536


def read_file(
    file: Source,
    limits: Limits | None = None,
    columns: list[str] | None = None,
    optional: list[str] = (),
) -> pd.DataFrame:
    """Decode CSV (optionally gzipped) or Parquet into strings/values, without coercion.

    For Parquet, only ``columns`` (reported as missing if absent) and those of ``optional``
    the file has are decoded; None reads every column. CSV is read whole.
    """
    limits = limits or Limits()
    name = file.name.lower()
    with file.open(limits) as (handle, size):
        if size == 0:
            raise IngestError([f"{file.name}: the file is empty"])
        if name.endswith(".parquet"):
            return _read_parquet(file.name, handle, limits, columns, optional)
        return _read_csv(file.name, handle, limits, gzipped=name.endswith(".gz"))


def _read_csv(source: str, handle: BinaryIO, limits: Limits, *, gzipped: bool) -> pd.DataFrame:
    stream: BinaryIO = GuardedStream(
        handle, limit=limits.max_file_bytes, limit_name="max_file_bytes", text=not gzipped
    )
    if gzipped:
        stream = GuardedStream(
            gzip.GzipFile(fileobj=stream, mode="rb"),
            limit=limits.max_decompressed_bytes,
            limit_name="max_decompressed_bytes",
            text=True,
        )
    try:
        # dtype=str: coercion happens in conform(), where a failure can name its row.
        df = pd.read_csv(
            io.BufferedReader(stream, buffer_size=1 << 20),
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8",
            nrows=limits.max_rows + 1,
        )
    except Refused as exc:
        raise IngestError([f"{source}: {exc}"]) from None
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.start + 4]
        raise IngestError(
            [f"{source}: not UTF-8 text (invalid bytes {bad!r}); re-export it as UTF-8"]
        ) from None
    except pd.errors.EmptyDataError:
        raise IngestError([f"{source}: the file is empty"]) from None
    except pd.errors.ParserError as exc:
        raise IngestError([f"{source}: malformed CSV: {_clip(str(exc), 200)}"]) from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise IngestError([f"{source}: not a valid gzip file: {exc}"]) from None
    if len(df) > limits.max_rows:
        raise IngestError([_too_many_rows(source, f"more than {limits.max_rows:,}", limits)])
    return df


def _read_parquet(
    source: str, handle: BinaryIO, limits: Limits, columns: list[str] | None, optional
) -> pd.DataFrame:
    parquet_safety.ensure()
    try:
        parquet = pq.ParquetFile(handle)
        meta, schema = parquet.metadata, parquet.schema_arrow
        if meta.num_rows > limits.max_rows:
            raise IngestError([_too_many_rows(source, f"{meta.num_rows:,}", limits)])
        declared = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if declared > limits.max_decompressed_bytes:
            raise IngestError([_too_big(source, f"{declared:,} bytes uncompressed", limits)])
        if columns is None:
            wanted = list(schema.names)
        else:
            missing = [c for c in columns if c not in schema.names]
            if missing:
                raise IngestError([_missing_columns(source, missing, schema.names)])
            wanted = [*columns, *(c for c in optional if c in schema.names and c not in columns)]
        nested = [
            f"{c!r} ({_clip(str(schema.field(c).type), _MAX_QUOTE)})"
            for c in wanted
            if pa.types.is_nested(schema.field(c).type)
        ]
        if nested:
            raise IngestError(
                [
                    f"{source}: column(s) {', '.join(nested)} are nested (struct/list/map); "
                    "landing files need flat columns of numbers, text or timestamps"
                ]
            )
        # Batch by batch, so a footer that understates the data cannot make us decode it all.
        batches, rows, nbytes = [], 0, 0
        for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=wanted):
            rows, nbytes = rows + batch.num_rows, nbytes + batch.nbytes
            if rows > limits.max_rows:
                raise IngestError(
                    [_too_many_rows(source, f"more than {limits.max_rows:,}", limits)]
                )
            if nbytes > limits.max_decompressed_bytes:
                raise IngestError([_too_big(source, f"more than {nbytes:,} bytes decoded", limits)])
            batches.append(batch)
        if not batches:
            return pd.DataFrame({c: pd.Series([], dtype=object) for c in wanted})
        return pa.Table.from_batches(batches).to_pandas()
    except RuntimeError as exc:
        if parquet_safety.is_refusal(exc):
            raise IngestError([str(parquet_safety.refusal(source))]) from None
        raise IngestError([f"{source}: cannot read as parquet: {_clip(str(exc), 200)}"]) from None
    except pa.ArrowException as exc:
        raise IngestError([f"{source}: cannot read as parquet: {_clip(str(exc), 200)}"]) from None
    except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        if isinstance(exc, IngestError):
            raise
        # pyarrow raises several unrelated types for a broken file (and a few not Arrow's own).
        raise IngestError(
            [f"{source}: cannot read as parquet: {type(exc).__name__}: {_clip(str(exc), 200)}"]
        ) from None


def _too_many_rows(source: str, found: str, limits: Limits) -> str:
    return (
        f"{source}: refused: {found} rows exceeds the per-file row limit "
        f"(ANOMALYOPS_INGEST__MAX_ROWS = {limits.max_rows:,}); split the export"
    )


def _too_big(source: str, found: str, limits: Limits) -> str:
    return (
        f"{source}: refused: {found} exceeds the decompressed size limit "
        f"(ANOMALYOPS_INGEST__MAX_DECOMPRESSED_BYTES = {limits.max_decompressed_bytes:,})"
    )


def _missing_columns(source: str, missing: list[str], found) -> str:
    found = [str(c) for c in found]
    listed = ", ".join(_clip(c, _MAX_QUOTE) for c in found[:_MAX_LISTED_COLUMNS])
    more = (
        f" and {len(found) - _MAX_LISTED_COLUMNS} more" if len(found) > _MAX_LISTED_COLUMNS else ""
    )
    return f"{source}: missing column(s) {', '.join(map(repr, missing))} (found: {listed}{more})"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _quote(value) -> str:
    """``repr`` of a bad value, cut short: the alert quotes it, the file keeps it whole."""
    text = repr(value)
    return text if len(text) <= _MAX_QUOTE else f"{text[:_MAX_QUOTE]}... ({len(text):,} characters)"


def conform(df: pd.DataFrame, spec: FeatureSpec, *, source: str, csv: bool = False) -> pd.DataFrame:
    """Check and cast a decoded table to the spec's columns and types.

    Raises :class:`IngestError` naming the file, column and row of every problem found.
    """
    if len(df) == 0:
        raise IngestError([f"{source}: the file has a header but no rows"])
    missing = [c for c in spec.required_columns if c not in df.columns]
    if missing:
        raise IngestError([_missing_columns(source, missing, df.columns)])
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
    examples = ", ".join(f"{_row_ref(i, csv)}: {_quote(raw.iloc[i])}" for i in bad[:_MAX_EXAMPLES])
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


def load_files(
    files: list[Source], spec: FeatureSpec, limits: Limits | None = None
) -> pd.DataFrame:
    """Read, conform and concatenate a day's files; every file's problems are reported."""
    if not files:
        raise IngestError(["no files to ingest"])
    frames, problems = [], []
    for file in files:
        parquet = file.name.lower().endswith(".parquet")
        try:
            # Parquet: only the spec's columns are decoded; the label is optional in inputs.
            label = [spec.label_column] if spec.label_column else []
            df = read_file(file, limits, columns=spec.required_columns, optional=label)
            frames.append(conform(df, spec, source=file.name, csv=not parquet))
        except IngestError as exc:
            problems += exc.problems
    if problems:
        raise IngestError(problems)
    return pd.concat(frames, ignore_index=True)
