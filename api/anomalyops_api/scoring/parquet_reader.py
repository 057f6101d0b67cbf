"""Parquet uploads, batch by batch, with anything pyarrow (or pyarrow_hotfix) raises on a
hostile or broken file turned into an error naming what is wrong."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow_hotfix  # noqa: F401 - CVE-2023-47248: refuse pickled extension types before any read

from anomalyops_api.errors import ApiError
from anomalyops_api.limits import ScoreLimits
from anomalyops_api.model import LoadedModel
from anomalyops_api.scoring.errors import BadValue, MalformedFile, UnsafeFile, WrongColumnType

_PICKLED_TYPE = "arrow.py_extension_type"
PARQUET_ERRORS = (pa.ArrowException, OSError, RuntimeError)


def parquet_error(exc: Exception, what: str = "not a valid Parquet file") -> ApiError:
    message = str(exc)
    if not isinstance(exc, (pa.ArrowException, OSError)) and _PICKLED_TYPE not in message:
        raise exc  # a RuntimeError that is not pyarrow_hotfix's refusal: a bug of ours
    if _PICKLED_TYPE in message:
        # pyarrow_hotfix refused it; its message quotes the pickle, which we do not echo.
        return UnsafeFile(
            f"the Parquet file declares a pickled Python extension type ({_PICKLED_TYPE}); "
            "refused because reading it would run code (CVE-2023-47248)"
        )
    first = message.strip().splitlines()[0][:200] if message.strip() else type(exc).__name__
    return MalformedFile(f"{what}: {first}")


def read_parquet_header(path: Path) -> list[str]:
    try:
        return pq.read_schema(str(path)).names
    except PARQUET_ERRORS as exc:
        raise parquet_error(exc) from None


def check_parquet_rows(src: Path, limits: ScoreLimits) -> None:
    """Refuse a Parquet file over the row limit from its footer, before reading any data."""
    try:
        rows = pq.ParquetFile(str(src)).metadata.num_rows
    except PARQUET_ERRORS as exc:
        raise parquet_error(exc) from None
    limits.check_rows(rows)


_NUMERIC = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal)
_TEXTUAL = (pa.types.is_string, pa.types.is_large_string)
_KEY_TYPES = (*_NUMERIC, *_TEXTUAL, pa.types.is_boolean, pa.types.is_temporal, pa.types.is_null)


def _key_type_ok(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):  # pandas categoricals
        kind = kind.value_type
    return any(test(kind) for test in _KEY_TYPES)


def iter_parquet(
    path: Path, model: LoadedModel, keys: list[str], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """Batches of the key columns (as text) and the features (float32)."""
    features = model.feature_names
    try:
        parquet = pq.ParquetFile(str(path))
        schema = parquet.schema_arrow
    except PARQUET_ERRORS as exc:
        raise parquet_error(exc) from None
    for name in features:
        kind = schema.field(name).type
        if not any(test(kind) for test in (*_NUMERIC, *_TEXTUAL)):
            raise WrongColumnType(f"column {name!r} has type {kind}; expected numbers", column=name)
    for name in keys:
        kind = schema.field(name).type
        if not _key_type_ok(kind):
            raise WrongColumnType(
                f"key column {name!r} has type {kind}; expected text, a number or a timestamp",
                column=name,
            )
    offset = 0
    try:
        batches = parquet.iter_batches(batch_size=batch_rows, columns=[*keys, *features])
        for batch in batches:
            columns = [_string_column(batch.column(k)) for k in keys]
            columns += [_float_column(batch.column(f), f, offset) for f in features]
            yield pa.RecordBatch.from_arrays(columns, names=[*keys, *features])
            offset += batch.num_rows
    except PARQUET_ERRORS as exc:
        raise parquet_error(exc, "unreadable Parquet file") from None


def _string_column(array: pa.Array) -> pa.Array:
    # Keys are echoed, not interpreted: one text form for CSV and JSON replies alike.
    return array if pa.types.is_string(array.type) else array.cast(pa.string())


def _float_column(array: pa.Array, name: str, offset: int) -> pa.Array:
    if pa.types.is_float32(array.type):
        return array
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return array.cast(pa.float32(), safe=False)
    try:
        return array.cast(pa.float32())
    except pa.ArrowInvalid:
        for i, value in enumerate(array.to_pylist()):  # error path only: name the bad cell
            try:
                if value is not None:
                    float(value)
            except ValueError:
                raise BadValue(
                    f"row {offset + i + 1}, column {name!r}: cannot parse {value!r} as a number",
                    row=offset + i + 1,
                    column=name,
                ) from None
        raise
