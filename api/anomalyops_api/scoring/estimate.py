"""How many rows a file holds, for progress reports, from a sample and never a full read."""

from __future__ import annotations

import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow_hotfix  # noqa: F401 - CVE-2023-47248: refuse pickled extension types before any read

from anomalyops_api.scoring.formats import InputFormat

ESTIMATE_SAMPLE_BYTES = 1024 * 1024


def count_rows_estimate(src: Path, fmt: InputFormat) -> int | None:
    """Exact for Parquet (its footer); for CSV, the file's size over the bytes per line of its
    first MiB (compressed bytes per line for gzip). Progress is capped at 100 %, and a
    finished job reports its true row count."""
    if fmt is InputFormat.PARQUET:
        try:
            return pq.ParquetFile(str(src)).metadata.num_rows
        except (pa.ArrowException, OSError, RuntimeError):
            return None
    try:
        size = src.stat().st_size
        with open(src, "rb") as f:
            sample = f.read(ESTIMATE_SAMPLE_BYTES)
        if fmt is InputFormat.CSV_GZIP:
            inflater = zlib.decompressobj(wbits=31)
            text = inflater.decompress(sample, 16 * ESTIMATE_SAMPLE_BYTES)
            consumed = len(sample) - len(inflater.unconsumed_tail)
        else:
            text, consumed = sample, len(sample)
    except (OSError, zlib.error):
        return None
    lines = text.count(b"\n")
    if consumed >= size and (not text or text.endswith(b"\n")):
        return max(lines - 1, 0)  # the whole file was in the sample: exact
    if consumed >= size:
        return lines  # no newline after the last row; minus the header, plus that row
    if lines == 0 or consumed == 0:
        return None
    return max(round(lines * size / consumed) - 1, 0)
