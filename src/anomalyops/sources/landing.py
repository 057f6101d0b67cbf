"""Files users drop in ``landing/<YYYY-MM-DD>/``: opened safely, read, checked, conformed.

Every problem names the file, the column and the row, because the person reading the alert
has to find the bad line in their own export. Landing files are untrusted: only regular files
are opened (never a symlink, FIFO or device), every size is capped before or while reading
(:class:`Limits`, from ``ANOMALYOPS_INGEST__*``), CSV is streamed from the file handle and
Parquet read batch by batch, and a Parquet file carrying a pickled extension type is refused
(:mod:`anomalyops.parquet_safety`).
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import shutil
import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from anomalyops import parquet_safety  # before any Parquet read: CVE-2023-47248
from anomalyops.spec import FeatureSpec

if TYPE_CHECKING:
    from anomalyops.settings import IngestSettings

READABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet")
_MAX_EXAMPLES = 3
_MAX_QUOTE = 60
"""Characters of a bad value (or column name) quoted in a problem: a 50 MB cell stays out."""
_MAX_LISTED_COLUMNS = 20
_PARQUET_BATCH_ROWS = 65_536
_GIB = 1024**3


class IngestError(ValueError):
    """A source file cannot become a raw partition. ``problems`` lists every reason found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Limits:
    """Caps on one landing file (see :class:`anomalyops.settings.IngestSettings`)."""

    max_file_bytes: int = 2 * _GIB
    max_decompressed_bytes: int = _GIB
    max_rows: int = 5_000_000

    @classmethod
    def from_settings(cls, ingest: IngestSettings) -> Limits:
        return cls(
            max_file_bytes=ingest.max_file_bytes,
            max_decompressed_bytes=ingest.max_decompressed_bytes,
            max_rows=ingest.max_rows,
        )


class Source(Protocol):
    """A named file that can be opened as ``(binary handle, size in bytes)``."""

    name: str

    def open(self, limits: Limits): ...


@dataclass(frozen=True)
class SourceFile:
    """A file already in memory (tests, callers that hold the bytes)."""

    name: str
    data: bytes

    @contextmanager
    def open(self, limits: Limits) -> Iterator[tuple[BinaryIO, int]]:
        _check_size(self.name, len(self.data), limits)
        yield io.BytesIO(self.data), len(self.data)


@dataclass(frozen=True)
class LandingFile:
    """A file in the lake's landing zone, opened only if it is a regular file within limits."""

    name: str
    """How problems name it (``landing/<date>/<file>``)."""
    fs: object
    """The lake's fsspec filesystem."""
    path: str

    def open(self, limits: Limits):
        return open_landing(self.fs, self.path, self.name, limits)


@contextmanager
def open_landing(fs, path: str, name: str, limits: Limits) -> Iterator[tuple[BinaryIO, int]]:
    """Open a landing file for reading as ``(unbuffered binary handle, size)``, or refuse it.

    On a local lake the file is opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked with
    ``fstat`` on the open descriptor, so a symlink (say to ``/proc/self/environ``) is never
    followed, a FIFO never blocks, and nothing can be swapped in between check and read.
    Object stores hold no links or devices; there the listing's type and size are checked.
    """
    if is_local(fs):
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise IngestError([_not_regular(name, "a symbolic link")]) from None
            raise IngestError([f"{name}: cannot open: {exc.strerror}"]) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise IngestError([_not_regular(name, _file_kind(st.st_mode))])
            _check_size(name, st.st_size, limits)
            os.set_blocking(fd, True)
            handle = os.fdopen(fd, "rb", buffering=0)
        except BaseException:
            os.close(fd)
            raise
        with handle:
            yield handle, st.st_size
        return
    info = fs.info(path)
    if info.get("type") != "file" or info.get("islink"):
        raise IngestError([_not_regular(name, f"a {info.get('type') or 'non-file'} entry")])
    size = int(info.get("size") or 0)
    _check_size(name, size, limits)
    with fs.open(path, "rb") as handle:
        yield handle, size


def is_local(fs) -> bool:
    """Whether ``fs`` is the local filesystem (where links, FIFOs and devices exist)."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return bool({"file", "local"} & set(protocols))


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def _not_regular(name: str, kind: str) -> str:
    return f"{name}: refused: {kind}; landing accepts regular files only (it was not read)"


def _check_size(name: str, size: int, limits: Limits) -> None:
    if size > limits.max_file_bytes:
        raise IngestError(
            [
                f"{name}: refused: {size:,} bytes exceeds the landing file size limit "
                f"(ANOMALYOPS_INGEST__MAX_FILE_BYTES = {limits.max_file_bytes:,}); split the export"
            ]
        )


class _Refused(Exception):
    """Raised from inside a read (through pandas) when a stream breaks a rule."""


class _GuardedStream(io.RawIOBase):
    """Pass bytes through, refusing past ``limit`` bytes and, for text, NULs and UTF-16.

    pandas' C parser silently cuts a field at a NUL byte, so a NUL must stop the read.
    """

    def __init__(self, raw: BinaryIO, *, limit: int, limit_name: str, text: bool):
        self._raw, self._limit, self._limit_name, self._text = raw, limit, limit_name, text
        self._seen = 0
        self._lines = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer)
        # Never ask for more than one byte past the limit: a bomb stops expanding right there.
        want = min(len(view), self._limit - self._seen + 1)
        chunk = self._raw.read(want)
        n = len(chunk)
        if self._text and n:
            self._check_text(chunk)
        self._seen += n
        if self._seen > self._limit:
            raise _Refused(
                f"refused: more than {self._limit:,} bytes "
                f"(ANOMALYOPS_INGEST__{self._limit_name.upper()} = {self._limit:,})"
            )
        view[:n] = chunk
        return n

    def _check_text(self, chunk: bytes) -> None:
        if self._seen == 0 and chunk[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise _Refused(
                "not UTF-8 text: it starts with a UTF-16 byte-order mark; re-export it as UTF-8"
            )
        nul = chunk.find(b"\0")
        if nul >= 0:
            line = self._lines + chunk.count(b"\n", 0, nul) + 1
            raise _Refused(
                f"NUL byte at line {line} (byte {self._seen + nul:,}): not UTF-8 text "
                "(a UTF-16 or binary file?); re-export it as UTF-8"
            )
        self._lines += chunk.count(b"\n")


def copy_file(file: Source, dst: BinaryIO, limits: Limits) -> None:
    """Stream ``file`` into ``dst`` (quarantine's evidence) under the same checks as a read.

    Raises :class:`IngestError` if the file is refused or grew past the size limit.
    """
    with file.open(limits) as (handle, _):
        src = _GuardedStream(
            handle, limit=limits.max_file_bytes, limit_name="max_file_bytes", text=False
        )
        try:
            shutil.copyfileobj(io.BufferedReader(src, buffer_size=1 << 20), dst)
        except _Refused as exc:
            raise IngestError([f"{file.name}: {exc}"]) from None


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
    stream: BinaryIO = _GuardedStream(
        handle, limit=limits.max_file_bytes, limit_name="max_file_bytes", text=not gzipped
    )
    if gzipped:
        stream = _GuardedStream(
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
    except _Refused as exc:
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
