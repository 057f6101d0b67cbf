"""The date-partitioned data lake: zones of ``ds=YYYY-MM-DD`` partitions of Parquet.

Writes are transactions: a partition is assembled under ``<zone>/_tmp/`` and renamed into
place, and a ``_SUCCESS`` marker (written last) is what makes it visible, so readers never
see half a partition even on object stores where a rename is a copy. Re-writing a date
replaces its partition; the replaced copy is removed only after the new one is in place,
and the replacement is logged.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum

import fsspec
import pandas as pd

from anomalyops import parquet_safety  # before any Parquet read: CVE-2023-47248

log = logging.getLogger(__name__)

SUCCESS = "_SUCCESS"
DATA_FILE = "part-00000.parquet"
_PARTITION_RE = re.compile(r"^ds=(\d{4}-\d{2}-\d{2})$")


class Zone(str, Enum):
    LANDING = "landing"
    RAW = "raw"
    VALIDATED = "validated"
    QUARANTINE = "quarantine"
    REPORTS = "reports"

    def __str__(self) -> str:
        return self.value


class PartitionNotFound(FileNotFoundError):
    pass


def as_date(ds: str | dt.date) -> dt.date:
    """Parse an Airflow ``ds`` (``YYYY-MM-DD``) or pass a date through."""
    if isinstance(ds, dt.datetime):
        return ds.date()
    if isinstance(ds, dt.date):
        return ds
    try:
        return dt.date.fromisoformat(ds)
    except (TypeError, ValueError):
        raise ValueError(f"not a date in YYYY-MM-DD form: {ds!r}") from None


class Lake:
    """A lake rooted at a local path or any fsspec URL (``memory://``, ``s3://`` ...)."""

    def __init__(self, root: str):
        self.url = str(root)
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.root = self.root.rstrip("/")

    def __repr__(self) -> str:
        return f"Lake({self.url!r})"

    # -- paths ---------------------------------------------------------------------------
    def zone_path(self, zone: Zone) -> str:
        return f"{self.root}/{Zone(zone)}"

    def partition_path(self, zone: Zone, ds: str | dt.date) -> str:
        return f"{self.zone_path(zone)}/ds={as_date(ds).isoformat()}"

    def landing_path(self, ds: str | dt.date) -> str:
        """Where users drop files for a logical date: ``landing/<YYYY-MM-DD>/``."""
        return f"{self.zone_path(Zone.LANDING)}/{as_date(ds).isoformat()}"

    def uri(self, path: str) -> str:
        """A path as a URL other tools (TFX, browsers) can open."""
        return (
            self.fs.unstrip_protocol(path)
            if self.fs.protocol not in ("file", ("file", "local"))
            else path
        )

    # -- reading -------------------------------------------------------------------------
    def exists(self, zone: Zone, ds: str | dt.date) -> bool:
        return self.fs.exists(f"{self.partition_path(zone, ds)}/{SUCCESS}")

    def partitions(self, zone: Zone) -> list[dt.date]:
        """Complete partitions of a zone, oldest first."""
        base = self.zone_path(zone)
        if not self.fs.exists(base):
            return []
        found = []
        for entry in self.fs.ls(base, detail=False):
            match = _PARTITION_RE.match(entry.rstrip("/").rsplit("/", 1)[-1])
            if match and self.fs.exists(f"{entry.rstrip('/')}/{SUCCESS}"):
                found.append(dt.date.fromisoformat(match.group(1)))
        return sorted(found)

    def read_table(self, zone: Zone, ds: str | dt.date) -> pd.DataFrame:
        path = self.partition_path(zone, ds)
        if not self.exists(zone, ds):
            raise PartitionNotFound(f"no complete partition at {self.uri(path)}")
        parquet_safety.ensure()
        with self.fs.open(f"{path}/{DATA_FILE}", "rb") as f:
            try:
                return pd.read_parquet(f)
            except RuntimeError as exc:
                if parquet_safety.is_refusal(exc):
                    raise parquet_safety.refusal(self.uri(f"{path}/{DATA_FILE}")) from None
                raise

    def read_meta(self, zone: Zone, ds: str | dt.date) -> dict:
        path = f"{self.partition_path(zone, ds)}/{SUCCESS}"
        if not self.fs.exists(path):
            raise PartitionNotFound(f"no complete partition at {self.uri(path)}")
        with self.fs.open(path, "rb") as f:
            raw = f.read()
        return json.loads(raw) if raw.strip() else {}

    def read_file(self, zone: Zone, ds: str | dt.date, name: str) -> bytes:
        with self.fs.open(f"{self.partition_path(zone, ds)}/{name}", "rb") as f:
            return f.read()

    # -- writing -------------------------------------------------------------------------
    def write_table(
        self,
        zone: Zone,
        ds: str | dt.date,
        df: pd.DataFrame,
        *,
        meta: dict | None = None,
        files: dict[str, bytes] | None = None,
    ) -> str:
        """Atomically replace the partition with ``df`` (plus side files such as a reason)."""
        with self.transaction(zone, ds, meta={"rows": len(df), **(meta or {})}) as tmp:
            buf = io.BytesIO()
            df.to_parquet(buf, index=False)
            self._put(f"{tmp}/{DATA_FILE}", buf.getvalue())
            for name, data in (files or {}).items():
                self._put(f"{tmp}/{name}", data)
        return self.partition_path(zone, ds)

    def write_files(
        self, zone: Zone, ds: str | dt.date, files: dict[str, bytes], *, meta: dict | None = None
    ) -> str:
        """Atomically replace a partition made of arbitrary files (reports, statistics)."""
        with self.transaction(zone, ds, meta=meta) as tmp:
            for name, data in files.items():
                self._put(f"{tmp}/{name}", data)
        return self.partition_path(zone, ds)

    @contextmanager
    def transaction(
        self, zone: Zone, ds: str | dt.date, *, meta: dict | None = None
    ) -> Iterator[str]:
        """Yield a temporary directory; on success it becomes the partition, else it is dropped."""
        final = self.partition_path(zone, ds)
        tmp = f"{self.zone_path(zone)}/_tmp/{final.rsplit('/', 1)[-1]}.{uuid.uuid4().hex[:8]}"
        self.fs.makedirs(tmp, exist_ok=True)
        try:
            yield tmp
            record = {
                "zone": str(Zone(zone)),
                "ds": as_date(ds).isoformat(),
                "written_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                **(meta or {}),
            }
            self._put(f"{tmp}/{SUCCESS}", json.dumps(record, indent=2, default=str).encode())
            self._swap_in(tmp, final)
        except BaseException:
            self.fs.rm(tmp, recursive=True) if self.fs.exists(tmp) else None
            raise

    def move(
        self,
        ds: str | dt.date,
        src: Zone,
        dst: Zone,
        *,
        files: dict[str, bytes] | None = None,
        meta: dict | None = None,
    ) -> str:
        """Move a complete partition between zones (e.g. raw -> quarantine), adding side files.

        The destination is written completely before the source is removed, so a crash in
        between leaves the data in both zones, never in neither.
        """
        dst_path = self._copy_partition(
            ds, src, dst, {**(meta or {}), "moved_from": str(Zone(src))}, files
        )
        src_path = self.partition_path(src, ds)
        self.fs.rm(src_path, recursive=True)
        log.info("moved %s -> %s", self.uri(src_path), self.uri(dst_path))
        return dst_path

    def copy(self, ds: str | dt.date, src: Zone, dst: Zone, *, meta: dict | None = None) -> str:
        """Copy a complete partition to another zone (raw -> validated keeps raw as the record)."""
        return self._copy_partition(
            ds, src, dst, {**(meta or {}), "copied_from": str(Zone(src))}, None
        )

    def _copy_partition(
        self, ds: str | dt.date, src: Zone, dst: Zone, meta: dict, files: dict[str, bytes] | None
    ) -> str:
        src_path = self.partition_path(src, ds)
        if not self.exists(src, ds):
            raise PartitionNotFound(f"no complete partition at {self.uri(src_path)}")
        with self.transaction(dst, ds, meta={**self.read_meta(src, ds), **meta}) as tmp:
            for entry in self.fs.ls(src_path, detail=False):
                name = entry.rstrip("/").rsplit("/", 1)[-1]
                if name != SUCCESS:
                    self.fs.copy(entry, f"{tmp}/{name}", recursive=True)
            for name, data in (files or {}).items():
                self._put(f"{tmp}/{name}", data)
        return self.partition_path(dst, ds)

    def remove(self, zone: Zone, ds: str | dt.date, *, reason: str) -> bool:
        """Remove a partition on purpose (never silently: the reason is logged)."""
        path = self.partition_path(zone, ds)
        if not self.fs.exists(path):
            return False
        self.fs.rm(path, recursive=True)
        log.warning("removed %s: %s", self.uri(path), reason)
        return True

    # -- internals -----------------------------------------------------------------------
    def _put(self, path: str, data: bytes) -> None:
        with self.fs.open(path, "wb") as f:
            f.write(data)

    def _swap_in(self, tmp: str, final: str) -> None:
        if not self._renames_directories:
            self._publish_by_copy(tmp, final)
            return
        # Rename the old partition aside (not delete) before renaming the new one in, so that
        # at every instant one complete copy exists under a known name.
        old = None
        if self.fs.exists(final):
            old = f"{tmp}.replaced"
            self.fs.mv(final, old, recursive=True)
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        try:
            self.fs.mv(tmp, final, recursive=True)
        except BaseException:
            if old is not None:
                self.fs.mv(old, final, recursive=True)
            raise
        if old is not None:
            self.fs.rm(old, recursive=True)
            log.info("replaced partition %s", self.uri(final))

    @property
    def _renames_directories(self) -> bool:
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        return bool({"file", "local"} & set(protocols))

    def _publish_by_copy(self, tmp: str, final: str) -> None:
        """Object stores have no directory rename: hide the old partition, copy, marker last.

        Readers see either the old partition, none, or the new one (never a mix), and the
        complete new copy stays in ``_tmp/`` until the marker is in place.
        """
        replaced = self.fs.exists(final)
        if self.fs.exists(f"{final}/{SUCCESS}"):
            self.fs.rm(f"{final}/{SUCCESS}")
        if replaced:
            self.fs.rm(final, recursive=True)
        files = sorted(self.fs.find(tmp), key=lambda path: path.endswith(f"/{SUCCESS}"))
        for path in files:
            self.fs.copy(path, final + path[len(tmp) :])
        self.fs.rm(tmp, recursive=True)
        if replaced:
            log.info("replaced partition %s", self.uri(final))
