"""Score a file on disk in bounded chunks: read (pyarrow) -> check -> model -> write.

Nothing here holds a whole file: CSV is parsed block by block with pyarrow's streaming
reader, Parquet batch by batch, and every chunk's result is appended to the output file
before the next chunk is read. The hot path is pyarrow and numpy; Python runs per chunk,
never per row (except to name the bad row of a chunk that already failed).
"""

from __future__ import annotations

import contextlib
import csv
import io
import queue
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pyarrow_hotfix  # noqa: F401 - CVE-2023-47248: refuse pickled extension types before any read

from anomalyops.model_contract import EXPLANATION_OUTPUT, FLAG_OUTPUT, SCORE_OUTPUT
from anomalyops_api import explain as explain_lib
from anomalyops_api.errors import ApiError
from anomalyops_api.limits import ScoreLimits, check_free_disk
from anomalyops_api.model import LoadedModel

MAX_HEADER_BYTES = 1024 * 1024


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
        raise ApiError(415, f"unsupported content type {content_type!r}: {ACCEPTED_TYPES_HINT}")


def detect_format(path: Path, content_type: str, filename: str | None) -> InputFormat:
    """Trust the bytes (magic numbers) over the label, but refuse a label the bytes deny."""
    check_content_type(content_type)
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise ApiError(400, "the uploaded file is empty")
    name = (filename or "").lower()
    if head[:2] == b"\x1f\x8b":
        return InputFormat.CSV_GZIP
    if head == b"PAR1":
        return InputFormat.PARQUET
    if content_type in PARQUET_TYPES or name.endswith((".parquet", ".pq")):
        raise ApiError(400, "the file is labelled Parquet but is not (no PAR1 magic bytes)")
    if content_type in GZIP_TYPES or name.endswith(".gz"):
        raise ApiError(400, "the file is labelled gzip but is not gzip-compressed")
    return InputFormat.CSV


@dataclass
class ScoreResult:
    rows: int
    model_version: int
    threshold: float
    output_path: Path
    output_format: OutputFormat
    seconds: float


ProgressCallback = Callable[[int], None]
ScoresCallback = Callable[[np.ndarray, np.ndarray], None]
"""Called once per scored chunk with (anomaly_score, is_anomaly); NaN scores (None flags)
are rows returned unscored. Used by traffic monitoring (traffic.Recorder)."""


# -- reading -------------------------------------------------------------------------------


def _open_csv_stream(path: Path, fmt: InputFormat) -> pa.NativeFile:
    return pa.input_stream(str(path), compression="gzip" if fmt is InputFormat.CSV_GZIP else None)


INFLATE_CHUNK = 1024 * 1024
DISK_CHECK_EVERY = 64 * INFLATE_CHUNK


def _inflate(src: Path, dest: Path, limits: ScoreLimits) -> None:
    """Decompress a gzip upload (all its members) to ``dest``, stopping at the limits.

    pyarrow must never read through a Python file object here: its CSV reader reads ahead on
    a background thread that needs the GIL, and dropping the reader mid-file (any error) then
    waits for that thread while holding the GIL, freezing the whole server. So the bounded
    step is this plain zlib loop (it releases the GIL while inflating), and pyarrow reads the
    result natively. Memory stays at one chunk whatever the compression ratio.
    """
    written, pending, member_open = 0, b"", False
    next_disk_check = DISK_CHECK_EVERY
    try:
        with open(src, "rb") as fin, open(dest, "wb") as fout:
            inflater = zlib.decompressobj(wbits=31)
            while True:
                if not pending:
                    pending = fin.read(INFLATE_CHUNK)
                    if not pending:
                        break
                out = inflater.decompress(pending, INFLATE_CHUNK)
                pending, member_open = inflater.unconsumed_tail, True
                if inflater.eof:  # concatenated gzip members are one stream (RFC 1952)
                    pending, member_open = inflater.unused_data, False
                    inflater = zlib.decompressobj(wbits=31)
                written += len(out)
                limits.check_decompressed(written)
                limits.check_time()
                fout.write(out)
                if written >= next_disk_check:
                    check_free_disk(dest.parent, limits.min_free_disk_bytes)
                    next_disk_check += DISK_CHECK_EVERY
        if member_open:
            raise ApiError(400, "corrupt gzip stream: the file ends in the middle of a member")
    except zlib.error as exc:
        raise ApiError(400, f"corrupt gzip stream: {exc}") from None


@contextlib.contextmanager
def _native_csv(src: Path, fmt: InputFormat, dest: Path, limits: ScoreLimits) -> Iterator[Path]:
    """The upload as a plain CSV file pyarrow reads natively: ``src`` itself, or a gzip upload
    inflated beside ``dest`` and removed afterwards, whatever happens."""
    if fmt is not InputFormat.CSV_GZIP:
        yield src
        return
    inflated = dest.with_name(f"{dest.name}.inflated.csv")
    try:
        _inflate(src, inflated, limits)
        yield inflated
    finally:
        inflated.unlink(missing_ok=True)


def read_csv_header(path: Path, fmt: InputFormat) -> list[str]:
    """The column names on the first line (decoding only that line)."""
    buf = b""
    try:
        with _open_csv_stream(path, fmt) as stream:
            while b"\n" not in buf and len(buf) < MAX_HEADER_BYTES:
                chunk = stream.read(64 * 1024)
                if not chunk:
                    break
                buf += chunk
    except (OSError, pa.ArrowException) as exc:
        raise ApiError(400, f"corrupt gzip stream: {exc}") from None
    line = buf.split(b"\n", 1)[0]
    if b"\n" not in buf and len(buf) >= MAX_HEADER_BYTES:
        raise ApiError(400, f"no line break in the first {MAX_HEADER_BYTES} bytes: not a CSV file")
    line = line.removeprefix(b"\xef\xbb\xbf").rstrip(b"\r")
    if not buf.strip():
        raise ApiError(400, "the uploaded file is empty")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400, f"the CSV header is not valid UTF-8 (byte {exc.start}); send UTF-8 text"
        ) from None
    try:
        return next(csv.reader(io.StringIO(text)))
    except (csv.Error, StopIteration) as exc:
        raise ApiError(400, f"malformed CSV header: {exc}") from None


_PICKLED_TYPE = "arrow.py_extension_type"


def _parquet_error(exc: Exception, what: str = "not a valid Parquet file") -> ApiError:
    """A 4xx for anything pyarrow (or pyarrow_hotfix) raises on a hostile or broken file."""
    message = str(exc)
    if not isinstance(exc, (pa.ArrowException, OSError)) and _PICKLED_TYPE not in message:
        raise exc  # a RuntimeError that is not pyarrow_hotfix's refusal: a bug of ours
    if _PICKLED_TYPE in message:
        # pyarrow_hotfix refused it; its message quotes the pickle, which we do not echo.
        return ApiError(
            422,
            f"the Parquet file declares a pickled Python extension type ({_PICKLED_TYPE}); "
            "refused because reading it would run code (CVE-2023-47248)",
        )
    first = message.strip().splitlines()[0][:200] if message.strip() else type(exc).__name__
    return ApiError(400, f"{what}: {first}")


_PARQUET_ERRORS = (pa.ArrowException, OSError, RuntimeError)


def read_header(path: Path, fmt: InputFormat) -> list[str]:
    if fmt is not InputFormat.PARQUET:
        return read_csv_header(path, fmt)
    try:
        return pq.read_schema(str(path)).names
    except _PARQUET_ERRORS as exc:
        raise _parquet_error(exc) from None


def check_columns(
    path: Path, fmt: InputFormat, model: LoadedModel, limits: ScoreLimits | None = None
) -> list[str]:
    """The cheap up-front check (header only; a Parquet footer's row count against
    ``limits``) a job submission gets before it is queued."""
    keys = plan_columns(read_header(path, fmt), model)
    if fmt is InputFormat.PARQUET and limits is not None:
        _check_parquet_rows(path, limits)
    return keys


def plan_columns(header: list[str], model: LoadedModel) -> list[str]:
    """Check the upload's columns against the served spec; returns the key columns present."""
    spec = model.spec
    wanted = set(spec.feature_names) | set(spec.key_columns)
    duplicated = sorted({c for c in header if c in wanted and header.count(c) > 1})
    if duplicated:
        raise ApiError(422, f"duplicate columns: {', '.join(duplicated)}", columns=duplicated)
    present = set(header)
    # Temporal derivations order each entity's rows by time: then the keys are required too.
    required = spec.required_columns if spec.derived_columns else spec.feature_names
    missing = [name for name in required if name not in present]
    if missing:
        hint = ""
        if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
            hint = " (the file looks like it is not comma-separated)"
        raise ApiError(
            422,
            f"missing columns required by model version {model.version}: "
            f"{', '.join(missing)}{hint}",
            columns=missing,
        )
    return [key for key in spec.key_columns if key in present]


_CONVERSION_RE = re.compile(
    r"In CSV column #(\d+): Row #(\d+): CSV conversion error to (\w+): (.*)", re.S
)
_PARSE_RE = re.compile(r"CSV parse error: Row #(\d+): (.*)", re.S)


def _csv_error(exc: Exception, header: list[str]) -> ApiError:
    """Translate pyarrow's message into a 4xx naming the row (1 = first data row)."""
    message = str(exc).strip()
    if match := _CONVERSION_RE.search(message):
        index, row, _target, reason = match.groups()
        column = header[int(index)] if int(index) < len(header) else f"#{index}"
        data_row = int(row) - 1
        if "UTF8" in reason:
            return ApiError(
                400,
                f"row {data_row}, column {column!r}: not valid UTF-8; send UTF-8 text",
                row=data_row,
                column=column,
            )
        value = reason.removeprefix("invalid value ")
        return ApiError(
            422,
            f"row {data_row}, column {column!r}: cannot parse {value} as a number",
            row=data_row,
            column=column,
        )
    if match := _PARSE_RE.search(message):
        row, reason = match.groups()
        reason = reason.splitlines()[0][:200]
        return ApiError(400, f"malformed CSV at row {int(row) - 1}: {reason}", row=int(row) - 1)
    if "inflate" in message or "compressed" in message or "gzip" in message.lower():
        return ApiError(400, f"corrupt gzip stream: {message[:200]}")
    return ApiError(400, f"malformed CSV: {message.splitlines()[0][:200] if message else exc}")


def _iter_csv(
    path: Path,
    model: LoadedModel,
    header: list[str],
    keys: list[str],
    block_bytes: int,
    limits: ScoreLimits,
) -> Iterator[pa.RecordBatch]:
    features = model.feature_names
    types = {name: pa.float32() for name in features} | {key: pa.string() for key in keys}
    try:
        limits.check_decompressed(path.stat().st_size)
        reader = pacsv.open_csv(
            str(path),  # a native file: see _inflate for why never a Python file object
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


_NUMERIC = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal)
_TEXTUAL = (pa.types.is_string, pa.types.is_large_string)
_KEY_TYPES = (*_NUMERIC, *_TEXTUAL, pa.types.is_boolean, pa.types.is_temporal, pa.types.is_null)


def _key_type_ok(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):  # pandas categoricals
        kind = kind.value_type
    return any(test(kind) for test in _KEY_TYPES)


def _iter_parquet(
    path: Path, model: LoadedModel, keys: list[str], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    features = model.feature_names
    try:
        parquet = pq.ParquetFile(str(path))
        schema = parquet.schema_arrow
    except _PARQUET_ERRORS as exc:
        raise _parquet_error(exc) from None
    for name in features:
        kind = schema.field(name).type
        if not any(test(kind) for test in (*_NUMERIC, *_TEXTUAL)):
            raise ApiError(422, f"column {name!r} has type {kind}; expected numbers", column=name)
    for name in keys:
        kind = schema.field(name).type
        if not _key_type_ok(kind):
            raise ApiError(
                422,
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
    except _PARQUET_ERRORS as exc:
        raise _parquet_error(exc, "unreadable Parquet file") from None


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
                raise ApiError(
                    422,
                    f"row {offset + i + 1}, column {name!r}: cannot parse {value!r} as a number",
                    row=offset + i + 1,
                    column=name,
                ) from None
        raise


def _features(batch: pa.RecordBatch, names: list[str], offset: int) -> dict[str, np.ndarray]:
    """float32 arrays by name; 422 at the first missing or non-finite value."""
    out = {}
    for name in names:
        column = batch.column(batch.schema.get_field_index(name))
        if column.null_count:
            row = int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))
            raise ApiError(
                422,
                f"row {offset + row + 1}, column {name!r}: missing value",
                row=offset + row + 1,
                column=name,
            )
        values = column.to_numpy()
        finite = np.isfinite(values)
        if not finite.all():
            row = int(np.argmin(finite))
            raise ApiError(
                422,
                f"row {offset + row + 1}, column {name!r}: {values[row]} is not a finite "
                "float32 number",
                row=offset + row + 1,
                column=name,
            )
        out[name] = values
    return out


# -- writing -------------------------------------------------------------------------------


_FORMULA_START = r"^[=+\-@\t\r]"
_PLAIN_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def escape_formulas(array: pa.Array) -> pa.Array:
    """Prefix text a spreadsheet would run as a formula (=, +, -, @, tab, CR first) with an
    apostrophe; plain numbers such as ``-3.5`` stay as they are (OWASP CSV injection)."""
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return array
    risky = pc.and_(
        pc.match_substring_regex(array, _FORMULA_START),
        pc.invert(pc.match_substring_regex(array, _PLAIN_NUMBER)),
    )
    if not pc.any(risky).as_py():
        return array
    return pc.if_else(risky, pc.binary_join_element_wise("'", array, ""), array)


def _result_batch(
    keys: dict[str, pa.Array],
    scores: np.ndarray,
    flags: np.ndarray,
    model: LoadedModel,
    extra: tuple[str, pa.Array] | None = None,
) -> pa.RecordBatch:
    """The columns CSV and Parquet results share: the keys, the signature's outputs by their
    contract names (a NaN score, a warm-up row left unscored, becomes null), and the version
    and threshold per row: a CSV has nowhere else to carry them, and they keep results of
    different versions apart once files are concatenated."""
    n = len(scores)
    columns = [
        *keys.values(),
        pa.array(scores.astype(np.float32, copy=False), from_pandas=True),
        pa.array(flags, pa.bool_()),
        pa.array(np.full(n, model.version, dtype=np.int64)),
        pa.array(np.full(n, model.threshold, dtype=np.float32)),
    ]
    names = [*keys, SCORE_OUTPUT, FLAG_OUTPUT, "model_version", "threshold"]
    if extra is not None:
        names.append(extra[0])
        columns.append(extra[1])
    return pa.RecordBatch.from_arrays(columns, names=names)


class _ArrowWriter:
    """Appends each chunk's :func:`_result_batch` to a file opened on the first chunk; the
    subclasses say how to open it and how to carry the explanations."""

    def __init__(self, path: Path, model: LoadedModel, explain: bool = False) -> None:
        self.path = path
        self.model = model
        self.explain = explain
        self._writer = None

    def _keys(self, keys: dict[str, pa.Array]) -> dict[str, pa.Array]:
        return keys

    def _explanations(self, explained: list) -> pa.Array:
        raise NotImplementedError

    def _open(self, schema: pa.Schema):
        raise NotImplementedError

    def write(
        self,
        keys: dict[str, pa.Array],
        scores: np.ndarray,
        flags: np.ndarray,
        explained: list | None = None,
    ) -> None:
        extra = None
        if self.explain:
            extra = ("top_features", self._explanations(explained or [None] * len(scores)))
        batch = _result_batch(self._keys(keys), scores, flags, self.model, extra)
        if self._writer is None:
            self._writer = self._open(batch.schema)
        self._writer.write_batch(batch)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class _CsvWriter(_ArrowWriter):
    def __init__(
        self, path: Path, model: LoadedModel, escape: bool = False, explain: bool = False
    ) -> None:
        super().__init__(path, model, explain)
        self.escape = escape

    def _keys(self, keys: dict[str, pa.Array]) -> dict[str, pa.Array]:
        if not self.escape:
            return keys
        return {name: escape_formulas(column) for name, column in keys.items()}

    def _explanations(self, explained: list) -> pa.Array:
        return pa.array(explain_lib.as_csv_cells(explained), pa.string())

    def _open(self, schema: pa.Schema) -> pacsv.CSVWriter:
        return pacsv.CSVWriter(str(self.path), schema)


class _ParquetWriter(_ArrowWriter):
    """Typed columns (keys as uploaded, float32 score, bool flag), one row group per chunk;
    the model version and threshold are columns as in CSV and also the file's key-value
    metadata. Explanations are a list of ``{feature, contribution}`` structs per row."""

    _EXPLANATION = pa.list_(pa.struct([("feature", pa.string()), ("contribution", pa.float32())]))

    def _explanations(self, explained: list) -> pa.Array:
        return pa.array(explain_lib.as_records(explained), self._EXPLANATION)

    def _open(self, schema: pa.Schema) -> pq.ParquetWriter:
        metadata = {
            b"anomalyops.model_version": str(self.model.version).encode(),
            b"anomalyops.threshold": repr(self.model.threshold).encode(),
        }
        return pq.ParquetWriter(str(self.path), schema.with_metadata(metadata), compression="zstd")


class _JsonWriter:
    """``{"model_version", "threshold", "results": [{...}, ...], "rows"}``, written per chunk."""

    def __init__(self, path: Path, model: LoadedModel) -> None:
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._rows = 0
        self._file.write(
            f'{{"model_version": {model.version}, "threshold": {model.threshold!r}, "results": ['
        )

    def write(
        self,
        keys: dict[str, pa.Array],
        scores: np.ndarray,
        flags: np.ndarray,
        explained: list | None = None,
    ) -> None:
        import pandas as pd  # lazy: only JSON replies need it

        frame = pd.DataFrame({name: col.to_pandas() for name, col in keys.items()})
        frame[SCORE_OUTPUT] = scores.astype(np.float64)
        frame[FLAG_OUTPUT] = flags
        if explained is not None:
            frame["top_features"] = pd.Series(explain_lib.as_records(explained), dtype=object)
        records = frame.to_json(orient="records", double_precision=7)
        if self._rows:
            self._file.write(",")
        self._file.write(records[1:-1])  # strip the chunk's own [ ]
        self._rows += len(frame)

    def close(self) -> None:
        self._file.write(f'], "rows": {self._rows}}}')
        self._file.close()


class _WriterThread:
    """Formats and writes result chunks on a second thread while the caller parses and
    scores the next chunk (both pyarrow steps release the GIL): on 2 cores this took the
    1M-row CSV path from ~1.0 s to ~0.7 s. The queue is short, so memory stays bounded."""

    _DONE = object()

    def __init__(self, writer: _ArrowWriter | _JsonWriter) -> None:
        self._writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="score-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not self._DONE:
            if self._error is None:
                try:
                    self._writer.write(*item)
                except BaseException as exc:  # handed to the caller in write()/close()
                    self._error = exc

    def write(
        self,
        keys: dict[str, pa.Array],
        scores: np.ndarray,
        flags: np.ndarray,
        explained: list | None = None,
    ) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((keys, scores, flags, explained))

    def close(self) -> None:
        self._queue.put(self._DONE)
        self._thread.join()
        self._writer.close()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop after a failure elsewhere; the caller's exception is the one that matters."""
        self._error = self._error or RuntimeError("aborted")
        self._queue.put(self._DONE)
        self._thread.join()
        with contextlib.suppress(Exception):
            self._writer.close()


def score_file(
    src: Path,
    fmt: InputFormat,
    model: LoadedModel,
    dest: Path,
    out_format: OutputFormat,
    *,
    csv_block_bytes: int = 4 * 1024 * 1024,
    parquet_batch_rows: int = 65536,
    on_progress: ProgressCallback | None = None,
    warmup: bool = False,
    limits: ScoreLimits | None = None,
    explain: int = 0,
    on_scores: ScoresCallback | None = None,
) -> ScoreResult:
    """Score ``src`` with ``model`` into ``dest``; raises :class:`ApiError` naming the problem.

    The whole file is scored by the one ``model`` passed in, whatever a reload does meanwhile.
    ``limits`` cut the run off (rows, decompressed bytes, result size, free disk, time).
    ``explain=k`` adds each flagged row's ``k`` top contributing features. ``on_scores`` sees
    every chunk's scores and flags (after they were written), e.g. a traffic recorder.
    """
    started = time.perf_counter()
    limits = limits or ScoreLimits()
    if explain and not model.explains:
        raise ApiError(
            422,
            f"model version {model.version} cannot explain its scores (its signature has no "
            f"{EXPLANATION_OUTPUT!r} output; models trained since the detector ensemble do): "
            "retry without explain",
        )
    header = read_header(src, fmt)
    keys = plan_columns(header, model)
    with contextlib.ExitStack() as stack:
        if fmt is InputFormat.PARQUET:
            _check_parquet_rows(src, limits)
            batches = _iter_parquet(src, model, keys, parquet_batch_rows)
        else:
            csv_path = stack.enter_context(_native_csv(src, fmt, dest, limits))
            batches = _iter_csv(csv_path, model, header, keys, csv_block_bytes, limits)
        if out_format is OutputFormat.CSV:
            sink = _CsvWriter(dest, model, limits.escape_formulas, explain=bool(explain))
        elif out_format is OutputFormat.PARQUET:
            sink = _ParquetWriter(dest, model, explain=bool(explain))
        else:
            sink = _JsonWriter(dest, model)
        writer = _WriterThread(sink)
        stream = _temporal_stream(model)
        rows = 0
        try:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                limits.check_rows(rows + batch.num_rows)
                features = _features(batch, model.feature_names, rows)
                if stream is not None:  # a temporal spec: derived columns from preceding rows
                    features, ready = _temporal(stream, batch, keys, features, rows, warmup)
                scores, flags, contributions = model.predict_explained(features, bool(explain))
                if stream is not None and not ready.all():
                    scores = np.where(ready, scores, np.nan).astype(np.float32)
                    flags = np.where(ready, flags, None)
                explained = None
                if contributions is not None:
                    explained = explain_lib.top_features(
                        contributions, flags, model.spec.model_columns, explain
                    )
                writer.write(
                    {k: batch.column(i) for i, k in enumerate(keys)}, scores, flags, explained
                )
                if on_scores is not None:
                    on_scores(scores, flags)
                rows += batch.num_rows
                limits.check_result(dest)
                limits.check_time()
                if on_progress is not None:
                    on_progress(rows)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        limits.check_result(dest)
        if rows == 0:
            raise ApiError(422, "the file has a header but no data rows")
        return ScoreResult(
            rows=rows,
            model_version=model.version,
            threshold=model.threshold,
            output_path=dest,
            output_format=out_format,
            seconds=time.perf_counter() - started,
        )


def _temporal_stream(model: LoadedModel):
    """Derived-column state for one upload, or None for a row-wise spec (no pandas import)."""
    if not model.spec.derived_columns:
        return None
    from anomalyops.temporal import TemporalStream

    return TemporalStream(model.spec)


def _temporal(stream, batch, keys, features, offset, warmup):
    """Features plus derived columns (anomalyops.temporal, as at ingest), and which rows have
    the history to be scored."""
    from anomalyops.temporal import TemporalError, chunk_inputs

    columns = {k: batch.column(i).to_numpy(zero_copy_only=False) for i, k in enumerate(keys)}
    try:
        return chunk_inputs(stream, columns, features, offset, warmup=warmup)
    except TemporalError as exc:
        gap = getattr(exc, "gap", None)
        named = (
            {"entity": gap.entity, "column": gap.column, "needed_rows": gap.needed} if gap else {}
        )
        raise ApiError(422, str(exc), **named) from None


def _check_parquet_rows(src: Path, limits: ScoreLimits) -> None:
    """Refuse a Parquet file over the row limit from its footer, before reading any data."""
    try:
        rows = pq.ParquetFile(str(src)).metadata.num_rows
    except _PARQUET_ERRORS as exc:
        raise _parquet_error(exc) from None
    limits.check_rows(rows)


ESTIMATE_SAMPLE_BYTES = 1024 * 1024


def count_rows_estimate(src: Path, fmt: InputFormat) -> int | None:
    """Rows in the file for progress reports, from a sample, never a full read: exact for
    Parquet (its footer); for CSV, the file's size over the bytes per line of its first MiB
    (compressed bytes per line for gzip). Progress is capped at 100 %, and a finished job
    reports its true row count."""
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
