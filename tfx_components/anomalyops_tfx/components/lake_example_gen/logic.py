"""Lake Parquet rows -> tf.Examples, typed the way the pipeline's schema expects.

TFX's parquet executor feeds rows through a generic dict->Example conversion that cannot
represent ``datetime64[ns, UTC]``. Here: timestamps become INT64 epoch microseconds, strings
BYTES, floats FLOAT, integers INT64; a null becomes an empty feature (missing), which the
schema's presence constraints and Transform's imputation then handle.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

SUCCESS = "_SUCCESS"


def _column_values(column: pa.ChunkedArray | pa.Array) -> tuple[str, list]:
    """(kind, python values) of one column; kind is 'int', 'float' or 'bytes'."""
    typ = column.type
    if pa.types.is_timestamp(typ):
        micros = pc.cast(column, pa.timestamp("us", tz=typ.tz)).cast(pa.int64())
        return "int", micros.to_pylist()
    if pa.types.is_date(typ):
        return "int", pc.cast(column, pa.date32()).cast(pa.int32()).to_pylist()
    if pa.types.is_boolean(typ) or pa.types.is_integer(typ):
        return "int", pc.cast(column, pa.int64()).to_pylist()
    if pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        return "float", pc.cast(column, pa.float64()).to_pylist()
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return "bytes", [None if v is None else v.encode() for v in column.to_pylist()]
    if pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
        return "bytes", column.to_pylist()
    raise TypeError(f"column of type {typ} cannot become a tf.Example feature")


def table_to_examples(table: pa.Table, columns: Iterable[str] | None = None) -> Iterator:
    """Yield one ``tf.train.Example`` per row of ``table`` (only ``columns``, if given)."""
    from tensorflow.core.example import example_pb2

    names = list(columns) if columns is not None else table.column_names
    missing = [name for name in names if name not in table.column_names]
    if missing:
        raise ValueError(f"lake table lacks columns {missing}; it has {table.column_names}")
    converted = []
    for name in names:
        kind, values = _column_values(table.column(name))
        converted.append((name, kind, values))
    for row in range(table.num_rows):
        example = example_pb2.Example()
        feature_map = example.features.feature
        for name, kind, values in converted:
            value = values[row]
            if value is None or (kind == "float" and value != value):  # null or NaN: missing
                continue
            feature = feature_map[name]
            if kind == "int":
                feature.int64_list.value.append(value)
            elif kind == "float":
                feature.float_list.value.append(value)
            else:
                feature.bytes_list.value.append(value)
        yield example


def check_partitions_complete(files: Iterable[str]) -> list[str]:
    """The partition directories of ``files``; raise if one lacks its ``_SUCCESS`` marker."""
    import fsspec

    dirs = sorted({os.path.dirname(f) for f in files})
    if not dirs:
        raise FileNotFoundError("no lake files match the split pattern")
    incomplete = [
        d for d in dirs if not fsspec.core.url_to_fs(d)[0].exists(os.path.join(d, SUCCESS))
    ]
    if incomplete:
        raise RuntimeError(
            f"lake partitions without {SUCCESS} (still being written, or a failed write): "
            f"{incomplete}"
        )
    return dirs
