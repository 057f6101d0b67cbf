"""Stream a request body to a file on disk, never holding it in memory.

FastAPI's ``UploadFile`` would also spool, but only after the whole multipart body has
been parsed, into an anonymous temp file, and without a size limit; parsing the stream here
lets us refuse an oversized upload (413) as soon as it crosses the limit and hand pyarrow a
real path to read natively.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import anyio
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import ClientDisconnect, Request

from anomalyops_api.limits import UploadTicket, UploadTimedOut, check_free_disk
from anomalyops_api.scoring.errors import (
    IncompleteUpload,
    MalformedFile,
    MissingFile,
    UnsupportedFormat,
    UploadTooLarge,
)
from anomalyops_api.scoring.formats import ACCEPTED_TYPES, ACCEPTED_TYPES_HINT, check_content_type

FILE_FIELD = "file"
FLUSH_BYTES = 1024 * 1024
MULTIPART_OVERHEAD = 64 * 1024
"""Bytes a multipart envelope may add around a file that is exactly at the limit; also the
most a client may send after the closing boundary before it is cut off."""
PARSE_SLICE_BYTES = 64 * 1024
RAW_BODY_TYPES = ACCEPTED_TYPES - {""}
SPOOL_PREFIX = "anomalyops-score-"
"""Per-request scratch dirs in the spool dir: the upload and the reply."""
SPOOL_MAX_AGE_S = 3600.0


@dataclass
class Upload:
    path: Path
    filename: str | None
    content_type: str
    size: int


def _too_large(limit: int) -> UploadTooLarge:
    return UploadTooLarge(
        f"upload exceeds the limit of {limit} bytes; split the file or submit it as a job "
        "(POST /v1/jobs)",
    )


class _FileSink:
    """Buffers parser output and writes it from a worker thread in ~1 MiB pieces, checking
    the size limit, the key's quota and the disk's free space as it goes."""

    def __init__(
        self, path: Path, limit: int, ticket: UploadTicket | None, min_free_disk: int
    ) -> None:
        self.path = path
        self.limit = limit
        self.ticket = ticket
        self.min_free_disk = min_free_disk
        self.size = 0
        self._pending = bytearray()
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()

    def feed(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise _too_large(self.limit)
        if self.ticket is not None:
            self.ticket.add(len(data))
        self._pending += data

    def _write(self, chunk: bytearray) -> None:
        check_free_disk(self.path.parent, self.min_free_disk, len(chunk))
        self._file.write(chunk)

    async def flush(self, force: bool = False) -> None:
        if self._pending and (force or len(self._pending) >= FLUSH_BYTES):
            chunk, self._pending = self._pending, bytearray()
            await anyio.to_thread.run_sync(self._write, chunk)

    def close(self) -> None:
        self._file.close()


async def receive_upload(
    request: Request,
    dest: Path,
    max_bytes: int,
    *,
    ticket: UploadTicket | None = None,
    min_free_disk: int = 0,
    timeout: tuple[float, str] | None = None,
) -> Upload:
    """Write the uploaded file to ``dest``: either the multipart field ``file`` or, for a
    request whose own Content-Type is a file type, the raw body. ``ticket`` counts the bytes
    against the caller's quota; ``min_free_disk`` bytes must stay free (507); ``timeout``
    (seconds, the setting's name) cuts off an upload that trickles or stalls (408), so a
    slow client cannot hold an upload slot for ever."""
    if timeout is None:
        return await _receive(request, dest, max_bytes, ticket, min_free_disk)
    seconds, setting = timeout
    with anyio.move_on_after(max(seconds, 0.0)) as scope:
        return await _receive(request, dest, max_bytes, ticket, min_free_disk)
    assert scope.cancelled_caught
    raise UploadTimedOut("the upload did not arrive in time", setting, seconds)


_ASCII_DIGITS = re.compile(r"[0-9]{1,20}")


def declared_length(value: str | None) -> int | None:
    """A Content-Length header as an int, or None unless it is 1-20 ASCII digits
    (``str.isdigit`` accepts '²', which ``int`` then refuses: a 500 from one header)."""
    if value is None or not _ASCII_DIGITS.fullmatch(value):
        return None
    return int(value)


async def _receive(
    request: Request,
    dest: Path,
    max_bytes: int,
    ticket: UploadTicket | None,
    min_free_disk: int,
) -> Upload:
    declared = declared_length(request.headers.get("content-length"))
    if declared is not None and declared > max_bytes + MULTIPART_OVERHEAD:
        # Refuse before reading: a client that sent "Expect: 100-continue" never uploads.
        raise _too_large(max_bytes)
    expected = declared or 0
    await anyio.to_thread.run_sync(check_free_disk, dest.parent, min_free_disk, expected)
    raw_type, params = parse_options_header(request.headers.get("content-type"))
    content_type = raw_type.decode("latin-1").lower()
    if content_type == "multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise MalformedFile("multipart/form-data without a boundary parameter")
        return await _receive_multipart(request, dest, max_bytes, boundary, ticket, min_free_disk)
    if content_type not in RAW_BODY_TYPES:
        raise UnsupportedFormat(
            f"unsupported request content type {content_type!r}: upload the file as "
            f"multipart/form-data field {FILE_FIELD!r}, or {ACCEPTED_TYPES_HINT} as the body",
        )
    sink = _FileSink(dest, max_bytes, ticket, min_free_disk)
    try:
        async for chunk in request.stream():
            sink.feed(chunk)
            await sink.flush()
        await sink.flush(force=True)
    except ClientDisconnect:
        raise IncompleteUpload("the client disconnected during the upload") from None
    finally:
        sink.close()
    return Upload(dest, None, content_type, sink.size)


async def _receive_multipart(
    request: Request,
    dest: Path,
    max_bytes: int,
    boundary: bytes,
    ticket: UploadTicket | None,
    min_free_disk: int,
) -> Upload:
    state: dict = {"field": b"", "value": b"", "headers": {}}
    found: dict = {}
    sink: _FileSink | None = None
    writing = False
    other_bytes = 0

    def on_part_begin() -> None:
        state["headers"] = {}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].decode("latin-1").lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        nonlocal sink, writing
        _, disposition = parse_options_header(state["headers"].get("content-disposition"))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        writing = name == FILE_FIELD and sink is None
        if writing:
            part_type, _ = parse_options_header(state["headers"].get("content-type"))
            found["content_type"] = part_type.decode("latin-1").lower()
            filename = disposition.get(b"filename")
            found["filename"] = filename.decode("utf-8", "replace") if filename else None
            check_content_type(found["content_type"])  # 415 before the bytes arrive
            sink = _FileSink(dest, max_bytes, ticket, min_free_disk)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        nonlocal other_bytes
        if writing:
            assert sink is not None
            sink.feed(memoryview(data)[start:end])
        else:
            other_bytes += end - start
            if other_bytes > MULTIPART_OVERHEAD:  # form fields are tiny; this is not one
                raise UploadTooLarge(f"multipart fields other than {FILE_FIELD!r} are too large")

    def on_part_end() -> None:
        nonlocal writing
        writing = False

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    trailing = 0
    try:
        async for chunk in request.stream():
            # Slices, so that the bytes after the closing boundary are counted even when
            # they arrive in the same (possibly huge) chunk as the boundary.
            for start in range(0, len(chunk), PARSE_SLICE_BYTES):
                piece = (
                    chunk
                    if len(chunk) <= PARSE_SLICE_BYTES
                    else chunk[start : start + PARSE_SLICE_BYTES]
                )
                if parser.state == MultipartState.END:
                    # The parser ignores what follows the closing boundary: do not read on.
                    trailing += len(piece)
                    if trailing > MULTIPART_OVERHEAD:
                        raise UploadTooLarge(
                            f"more than {MULTIPART_OVERHEAD} bytes after the closing "
                            "multipart boundary",
                        )
                    continue
                parser.write(piece)
            if sink is not None:
                await sink.flush()
        parser.finalize()
        if sink is not None:
            await sink.flush(force=True)
    except MultipartParseError as exc:
        raise MalformedFile(f"malformed multipart body: {exc}") from None
    except ClientDisconnect:
        raise IncompleteUpload("the client disconnected during the upload") from None
    finally:
        if sink is not None:
            sink.close()
    if sink is None:
        raise MissingFile(
            f"no file uploaded: send it as the multipart/form-data field {FILE_FIELD!r}"
        )
    return Upload(dest, found.get("filename"), found["content_type"], sink.size)


def sweep_spool(
    spool_dir: Path | None,
    max_age_s: float = SPOOL_MAX_AGE_S,
    live: set[Path] | frozenset[Path] = frozenset(),
) -> int:
    """Delete request scratch dirs a killed process left behind; returns how many.

    ``live`` are this process's dirs in use, whatever their age (a slow upload or download
    can outlast ``max_age_s``). Another process sharing the spool dir keeps its dirs fresh
    enough only if its requests finish within ``max_age_s``."""
    root = Path(spool_dir or tempfile.gettempdir())
    cutoff = time.time() - max_age_s
    live = {Path(p).resolve() for p in live}
    removed = 0
    for path in root.glob(f"{SPOOL_PREFIX}*"):
        try:
            if path.resolve() in live:
                continue
            if path.is_dir() and path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        except OSError:
            continue
    return removed
