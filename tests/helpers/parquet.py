"""A hostile Parquet file: CVE-2023-47248's pickled extension type (tests/security)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from anomalyops.settings import PROJECT_ROOT
from anomalyops.spec import load_spec

DAY = "2026-11-05"
SPEC = load_spec(PROJECT_ROOT / "config" / "feature_spec.yaml")


def write_pickle_parquet(path: Path, marker: Path, rows: int = 3) -> None:
    """A Parquet file with the spec's columns plus one whose type unpickles ``touch marker``."""

    class Payload(pa.PyExtensionType):
        def __init__(self) -> None:
            super().__init__(pa.int64())

        def __reduce__(self):
            return os.system, (f"touch {shlex.quote(str(marker))}",)

    columns = {SPEC.timestamp.column: pa.array([f"{DAY}T00:0{i}:00Z" for i in range(rows)])}
    if SPEC.entity:
        columns[SPEC.entity.column] = pa.array(["s1"] * rows)
    for name in SPEC.feature_names:
        columns[name] = pa.array([1.0] * rows)
    columns["payload"] = pa.ExtensionArray.from_storage(Payload(), pa.array(range(rows)))
    pq.write_table(pa.table(columns), path)
    assert not marker.exists(), "writing the file must not run the payload"
