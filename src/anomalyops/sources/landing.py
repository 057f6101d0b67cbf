"""Files users drop in ``landing/<YYYY-MM-DD>/``: opened safely, within limits.

Landing files are untrusted: only regular files are opened (never a symlink, FIFO or device),
every size is capped before or while reading (:class:`Limits`, from ``ANOMALYOPS_INGEST__*``),
and bytes pass through :class:`GuardedStream`, which stops a read at the limit (a
decompression bomb stops expanding right there) and, for text, at a NUL or a UTF-16 mark.
Decoding and checking the contents is :mod:`anomalyops.sources.landing_read`.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Protocol

if TYPE_CHECKING:
    from anomalyops.settings import IngestSettings

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


class Refused(Exception):
    """Raised from inside a read (through pandas) when a stream breaks a rule."""


class GuardedStream(io.RawIOBase):
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
            raise Refused(
                f"refused: more than {self._limit:,} bytes "
                f"(ANOMALYOPS_INGEST__{self._limit_name.upper()} = {self._limit:,})"
            )
        view[:n] = chunk
        return n

    def _check_text(self, chunk: bytes) -> None:
        if self._seen == 0 and chunk[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise Refused(
                "not UTF-8 text: it starts with a UTF-16 byte-order mark; re-export it as UTF-8"
            )
        nul = chunk.find(b"\0")
        if nul >= 0:
            line = self._lines + chunk.count(b"\n", 0, nul) + 1
            raise Refused(
                f"NUL byte at line {line} (byte {self._seen + nul:,}): not UTF-8 text "
                "(a UTF-16 or binary file?); re-export it as UTF-8"
            )
        self._lines += chunk.count(b"\n")


def copy_file(file: Source, dst: BinaryIO, limits: Limits) -> None:
    """Stream ``file`` into ``dst`` (quarantine's evidence) under the same checks as a read.

    Raises :class:`IngestError` if the file is refused or grew past the size limit.
    """
    with file.open(limits) as (handle, _):
        src = GuardedStream(
            handle, limit=limits.max_file_bytes, limit_name="max_file_bytes", text=False
        )
        try:
            shutil.copyfileobj(io.BufferedReader(src, buffer_size=1 << 20), dst)
        except Refused as exc:
            raise IngestError([f"{file.name}: {exc}"]) from None
