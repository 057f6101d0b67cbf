"""Gzip uploads become plain CSV files on disk before pyarrow sees them.

pyarrow must never read through a Python file object here: its CSV reader reads ahead on a
background thread that needs the GIL, and dropping the reader mid-file (any error) then
waits for that thread while holding the GIL, freezing the whole server. So the bounded step
is a plain zlib loop (it releases the GIL while inflating), and pyarrow reads the result
natively. Memory stays at one chunk whatever the compression ratio.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from pathlib import Path

from anomalyops_api.limits import ScoreLimits, check_free_disk
from anomalyops_api.scoring.errors import CorruptGzip
from anomalyops_api.scoring.formats import InputFormat

INFLATE_CHUNK = 1024 * 1024
DISK_CHECK_EVERY = 64 * INFLATE_CHUNK


def inflate(src: Path, dest: Path, limits: ScoreLimits) -> None:
    """Decompress a gzip upload (all its members) to ``dest``, stopping at the limits."""
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
            raise CorruptGzip("corrupt gzip stream: the file ends in the middle of a member")
    except zlib.error as exc:
        raise CorruptGzip(f"corrupt gzip stream: {exc}") from None


@contextlib.contextmanager
def native_csv(src: Path, fmt: InputFormat, dest: Path, limits: ScoreLimits) -> Iterator[Path]:
    """The upload as a plain CSV file pyarrow reads natively: ``src`` itself, or a gzip upload
    inflated beside ``dest`` and removed afterwards, whatever happens."""
    if fmt is not InputFormat.CSV_GZIP:
        yield src
        return
    inflated = dest.with_name(f"{dest.name}.inflated.csv")
    try:
        inflate(src, inflated, limits)
        yield inflated
    finally:
        inflated.unlink(missing_ok=True)
