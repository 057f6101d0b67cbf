"""An upload's columns and cells checked against the served spec, before and while scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from anomalyops_api.limits import ScoreLimits
from anomalyops_api.model import LoadedModel
from anomalyops_api.scoring.csv_reader import read_csv_header
from anomalyops_api.scoring.errors import BadValue, DuplicateColumns, MissingColumns
from anomalyops_api.scoring.formats import InputFormat
from anomalyops_api.scoring.parquet_reader import check_parquet_rows, read_parquet_header


def read_header(path: Path, fmt: InputFormat) -> list[str]:
    if fmt is InputFormat.PARQUET:
        return read_parquet_header(path)
    return read_csv_header(path, fmt)


def check_columns(
    path: Path, fmt: InputFormat, model: LoadedModel, limits: ScoreLimits | None = None
) -> list[str]:
    """The cheap up-front check (header only; a Parquet footer's row count against
    ``limits``) a job submission gets before it is queued."""
    keys = plan_columns(read_header(path, fmt), model)
    if fmt is InputFormat.PARQUET and limits is not None:
        check_parquet_rows(path, limits)
    return keys


def plan_columns(header: list[str], model: LoadedModel) -> list[str]:
    """Check the upload's columns against the served spec; returns the key columns present."""
    spec = model.spec
    wanted = set(spec.feature_names) | set(spec.key_columns)
    duplicated = sorted({c for c in header if c in wanted and header.count(c) > 1})
    if duplicated:
        raise DuplicateColumns(f"duplicate columns: {', '.join(duplicated)}", columns=duplicated)
    present = set(header)
    # Temporal derivations order each entity's rows by time: then the keys are required too.
    required = spec.required_columns if spec.derived_columns else spec.feature_names
    missing = [name for name in required if name not in present]
    if missing:
        hint = ""
        if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
            hint = " (the file looks like it is not comma-separated)"
        raise MissingColumns(
            f"missing columns required by model version {model.version}: "
            f"{', '.join(missing)}{hint}",
            columns=missing,
        )
    return [key for key in spec.key_columns if key in present]


def chunk_features(batch: pa.RecordBatch, names: list[str], offset: int) -> dict[str, np.ndarray]:
    """float32 arrays by name; :class:`BadValue` at the first missing or non-finite value."""
    out = {}
    for name in names:
        column = batch.column(batch.schema.get_field_index(name))
        if column.null_count:
            row = int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))
            raise BadValue(
                f"row {offset + row + 1}, column {name!r}: missing value",
                row=offset + row + 1,
                column=name,
            )
        values = column.to_numpy()
        finite = np.isfinite(values)
        if not finite.all():
            row = int(np.argmin(finite))
            raise BadValue(
                f"row {offset + row + 1}, column {name!r}: {values[row]} is not a finite "
                "float32 number",
                row=offset + row + 1,
                column=name,
            )
        out[name] = values
    return out
