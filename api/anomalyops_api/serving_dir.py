"""What is on disk for the registry: the serving directory's version directories (which are
complete, and a fingerprint that changes when a version's files are rewritten) and the
operator's pin file. Kept apart from :mod:`anomalyops_api.registry`, which decides what to
serve from them."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from anomalyops.model_contract import REQUIRED_FILES, is_version_name

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class VersionOnDisk:
    version: int
    path: Path
    complete: bool
    fingerprint: Fingerprint


def _fingerprint(version_dir: Path) -> Fingerprint:
    """(name, size, mtime_ns) of every file: any rewrite in place shows up here."""
    entries = []
    for root, _, files in os.walk(version_dir):
        for name in files:
            path = Path(root, name)
            try:
                st = path.stat()
            except OSError:
                continue
            entries.append((str(path.relative_to(version_dir)), st.st_size, st.st_mtime_ns))
    return tuple(sorted(entries))


def scan_versions(model_dir: Path) -> list[VersionOnDisk]:
    """Integer-named subdirectories, ascending; ``.tmp-*`` and other names are ignored."""
    try:
        names = os.listdir(model_dir)
    except FileNotFoundError:
        return []
    versions = []
    for name in names:
        path = model_dir / name
        if not is_version_name(name) or not path.is_dir():
            continue
        complete = all((path / f).is_file() for f in REQUIRED_FILES)
        fingerprint = _fingerprint(path) if complete else ()
        versions.append(VersionOnDisk(int(name), path, complete, fingerprint))
    return sorted(versions, key=lambda v: v.version)


def write_pin(pin_file: Path, version: int | None) -> None:
    """Persisted so a restart during an incident does not roll forward to the bad version."""
    if version is None:
        pin_file.unlink(missing_ok=True)
        return
    pin_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = pin_file.with_suffix(".tmp")
    payload = {"version": version, "pinned_at": dt.datetime.now(dt.timezone.utc).isoformat()}
    tmp.write_text(json.dumps(payload))
    tmp.replace(pin_file)


def read_pin(pin_file: Path) -> int | None:
    if not pin_file.exists():
        return None
    try:
        version = int(json.loads(pin_file.read_text())["version"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("ignoring unreadable pin file %s: %s", pin_file, exc)
        return None
    log.warning(
        "version %d is pinned (from %s); POST /admin/unpin to follow the newest", version, pin_file
    )
    return version
