"""Which file formats come in and go out, and which one an upload really is."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from anomalyops_api.scoring.errors import MalformedFile, UnsupportedFormat


class InputFormat(str, Enum):
    CSV = "csv"
    CSV_GZIP = "csv.gz"
    PARQUET = "parquet"


class OutputFormat(str, Enum):
    CSV = "csv"
    JSON = "json"
    PARQUET = "parquet"

    @property
    def media_type(self) -> str:
        return _OUTPUT_MEDIA[self]


_OUTPUT_MEDIA = {
    OutputFormat.CSV: "text/csv",
    OutputFormat.JSON: "application/json",
    OutputFormat.PARQUET: "application/vnd.apache.parquet",
}


CSV_TYPES = {"text/csv", "application/csv", "text/x-csv", "text/plain", "application/vnd.ms-excel"}
GZIP_TYPES = {"application/gzip", "application/x-gzip", "application/x-gzip-compressed"}
PARQUET_TYPES = {"application/vnd.apache.parquet", "application/x-parquet", "application/parquet"}
GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}
ACCEPTED_TYPES = CSV_TYPES | GZIP_TYPES | PARQUET_TYPES | GENERIC_TYPES
ACCEPTED_TYPES_HINT = (
    "send CSV (text/csv), gzip-compressed CSV (application/gzip) "
    "or Parquet (application/vnd.apache.parquet)"
)


def check_content_type(content_type: str) -> None:
    if content_type not in ACCEPTED_TYPES:
        raise UnsupportedFormat(f"unsupported content type {content_type!r}: {ACCEPTED_TYPES_HINT}")


def detect_format(path: Path, content_type: str, filename: str | None) -> InputFormat:
    """Trust the bytes (magic numbers) over the label, but refuse a label the bytes deny."""
    check_content_type(content_type)
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise MalformedFile("the uploaded file is empty")
    name = (filename or "").lower()
    if head[:2] == b"\x1f\x8b":
        return InputFormat.CSV_GZIP
    if head == b"PAR1":
        return InputFormat.PARQUET
    if content_type in PARQUET_TYPES or name.endswith((".parquet", ".pq")):
        raise MalformedFile("the file is labelled Parquet but is not (no PAR1 magic bytes)")
    if content_type in GZIP_TYPES or name.endswith(".gz"):
        raise MalformedFile("the file is labelled gzip but is not gzip-compressed")
    return InputFormat.CSV
