"""CSV uploads, block by block with pyarrow's streaming reader, and pyarrow's complaints
turned into errors that name the row and column (1 = the first data row)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from anomalyops_api.errors import ApiError
from anomalyops_api.limits import ScoreLimits
from anomalyops_api.model import LoadedModel
from anomalyops_api.scoring.errors import BadValue, CorruptGzip, MalformedFile, NotUtf8
from anomalyops_api.scoring.formats import InputFormat

MAX_HEADER_BYTES = 1024 * 1024


def _open_stream(path: Path, fmt: InputFormat) -> pa.NativeFile:
    return pa.input_stream(str(path), compression="gzip" if fmt is InputFormat.CSV_GZIP else None)


def read_csv_header(path: Path, fmt: InputFormat) -> list[str]:
    """The column names on the first line (decoding only that line)."""
    buf = b""
    try:
        with _open_stream(path, fmt) as stream:
            while b"\n" not in buf and len(buf) < MAX_HEADER_BYTES:
                chunk = stream.read(64 * 1024)
                if not chunk:
                    break
                buf += chunk
    except (OSError, pa.ArrowException) as exc:
        raise CorruptGzip(f"corrupt gzip stream: {exc}") from None
    line = buf.split(b"\n", 1)[0]
    if b"\n" not in buf and len(buf) >= MAX_HEADER_BYTES:
        raise MalformedFile(f"no line break in the first {MAX_HEADER_BYTES} bytes: not a CSV file")
    line = line.removeprefix(b"\xef\xbb\xbf").rstrip(b"\r")
    if not buf.strip():
        raise MalformedFile("the uploaded file is empty")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotUtf8(
            f"the CSV header is not valid UTF-8 (byte {exc.start}); send UTF-8 text"
        ) from None
    try:
        return next(csv.reader(io.StringIO(text)))
    except (csv.Error, StopIteration) as exc:
        raise MalformedFile(f"malformed CSV header: {exc}") from None


_CONVERSION_RE = re.compile(
    r"In CSV column #(\d+): Row #(\d+): CSV conversion error to (\w+): (.*)", re.S
)
_PARSE_RE = re.compile(r"CSV parse error: Row #(\d+): (.*)", re.S)


def _csv_error(exc: Exception, header: list[str]) -> ApiError:
    """Translate pyarrow's message into an error naming the row (1 = first data row)."""
    message = str(exc).strip()
    if match := _CONVERSION_RE.search(message):
        index, row, _target, reason = match.groups()
        column = header[int(index)] if int(index) < len(header) else f"#{index}"
        data_row = int(row) - 1
        if "UTF8" in reason:
            return NotUtf8(
                f"row {data_row}, column {column!r}: not valid UTF-8; send UTF-8 text",
                row=data_row,
                column=column,
            )
        value = reason.removeprefix("invalid value ")
        return BadValue(
            f"row {data_row}, column {column!r}: cannot parse {value} as a number",
            row=data_row,
            column=column,
        )
    if match := _PARSE_RE.search(message):
        row, reason = match.groups()
        reason = reason.splitlines()[0][:200]
        return MalformedFile(f"malformed CSV at row {int(row) - 1}: {reason}", row=int(row) - 1)
    if "inflate" in message or "compressed" in message or "gzip" in message.lower():
        return CorruptGzip(f"corrupt gzip stream: {message[:200]}")
    return MalformedFile(f"malformed CSV: {message.splitlines()[0][:200] if message else exc}")


def iter_csv(
    path: Path,
    model: LoadedModel,
    header: list[str],
    keys: list[str],
    block_bytes: int,
    limits: ScoreLimits,
) -> Iterator[pa.RecordBatch]:
    """Batches of the key columns (text) and the features (float32) of a plain CSV file."""
    features = model.feature_names
    types = {name: pa.float32() for name in features} | {key: pa.string() for key in keys}
    try:
        limits.check_decompressed(path.stat().st_size)
        reader = pacsv.open_csv(
            str(path),  # a native file: see scoring.inflate for why never a Python file object
            # use_threads=False: measured faster here, and rows in errors stay exact
            read_options=pacsv.ReadOptions(block_size=block_bytes, use_threads=False),
            convert_options=pacsv.ConvertOptions(
                column_types=types, include_columns=[*keys, *features]
            ),
        )
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            yield batch
    except (pa.ArrowException, OSError) as exc:
        raise _csv_error(exc, header) from None
