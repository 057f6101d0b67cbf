"""A version's evaluation report (the evaluation gate's HTML page), read safely from disk.

The Pusher copies ``evaluation_report.html`` into the version directory and names it in the
metadata (``docs/model-contract.md``). The name comes from a file on disk, so it is checked
like input: a plain file name, a regular file inside the version directory (no symlink), and
bounded in size.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from anomalyops_api.errors import NotFound
from anomalyops_api.model import ModelMetadata

MAX_REPORT_BYTES = 32 * 1024 * 1024
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.html")
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
"""The page is static: inline styles and SVG, no script, nothing fetched."""


def report_name(metadata: ModelMetadata) -> str | None:
    """The report's file name from the metadata, or None when it names none (or a path)."""
    name = (metadata.model_extra or {}).get("evaluation_report")
    if isinstance(name, str) and _PLAIN_NAME.fullmatch(name) and ".." not in name:
        return name
    return None


def read_report(version_dir: Path, metadata: ModelMetadata) -> bytes:
    """The report's bytes; :class:`NotFound` naming why when there is none to serve."""
    name = report_name(metadata)
    if name is None:
        raise NotFound(f"model version {metadata.version} has no evaluation report")
    path = version_dir / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        raise NotFound(
            f"model version {metadata.version}: its evaluation report {name!r} is missing"
        ) from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise NotFound(f"model version {metadata.version}: {name!r} is not a file")
        if info.st_size > MAX_REPORT_BYTES:
            raise NotFound(
                f"model version {metadata.version}: {name!r} is larger than "
                f"{MAX_REPORT_BYTES} bytes; open it from the serving directory",
            )
        return f.read(MAX_REPORT_BYTES + 1)[:MAX_REPORT_BYTES]
