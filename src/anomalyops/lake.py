"""The date-partitioned data lake: zones of ``ds=YYYY-MM-DD`` partitions of Parquet.

Writes are transactions: a partition is assembled under ``<zone>/_tmp/`` and renamed into
place, and a ``_SUCCESS`` marker (written last) is what makes it visible, so readers never
see half a partition even on object stores where a rename is a copy. Re-writing a date
replaces its partition; the replaced copy is removed only after the new one is in place,
and the replacement is logged.

Publishing is recoverable: before the old partition is touched, a journal
(``<zone>/_tmp/ds=<day>.publish.json``) names the complete new copy, which is kept until the
new partition has its marker. A publish cut short (a failed copy, a killed process) is
finished by the next read or write of that partition. Writers of one date take its lock
(:meth:`Lake.lock`), so a ``readmit`` and a DAG re-run of the same day cannot interleave.

This module is the zones-and-partitions API; the swap under a journal is
:mod:`anomalyops.lake_publish`, the per-date lock :mod:`anomalyops.lake_lock`.
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
import pyarrow.parquet as pq

from anomalyops import parquet_safety  # before any Parquet read: CVE-2023-47248
from anomalyops.lake_lock import PartitionLocked, date_lock
from anomalyops.lake_publish import JOURNAL_SUFFIX, SUCCESS, Publisher
from anomalyops.settings import LakeLockSettings

log = logging.getLogger(__name__)

DATA_FILE = "part-00000.parquet"
_PARTITION_RE = re.compile(r"^ds=(\d{4}-\d{2}-\d{2})$")


class Zone(str, Enum):
    LANDING = "landing"
    RAW = "raw"
    VALIDATED = "validated"
    QUARANTINE = "quarantine"
    REPORTS = "reports"
    MONITORING = "monitoring"
    """What the served model did with each day's uploads (``traffic.json``)."""

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

    def __init__(self, root: str, *, lock_settings: LakeLockSettings | None = None):
        self.url = str(root)
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.root = self.root.rstrip("/")
        self.lock_settings = lock_settings or LakeLockSettings()

    def __repr__(self) -> str:
        return f"Lake({self.url!r})"

    @property
    def _publisher(self) -> Publisher:
        # Made on use, on whatever filesystem the lake has now (tests swap in a faulty one).
        return Publisher(self.fs, self.uri)

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
        marker = f"{self.partition_path(zone, ds)}/{SUCCESS}"
        if self.fs.exists(marker):
            return True
        # Only on a miss: a publish cut short is finished here, so the data reappears.
        return self.recover(zone, ds, wait=False) and self.fs.exists(marker)

    def partitions(self, zone: Zone) -> list[dt.date]:
        """Complete partitions of a zone, oldest first."""
        base = self.zone_path(zone)
        if not self.fs.exists(base):
            return []
        self._recover_zone(zone)
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
                # ParquetFile, not pd.read_parquet: on a file object the latter goes through
                # pyarrow's dataset scanner, which aborts the interpreter at exit ("terminate
                # called without an active exception") after any read error.
                return pq.ParquetFile(f).read().to_pandas()
            except RuntimeError as exc:
                if parquet_safety.is_refusal(exc):
                    raise parquet_safety.refusal(self.uri(f"{path}/{DATA_FILE}")) from None
                raise

    def read_meta(self, zone: Zone, ds: str | dt.date) -> dict:
        path = f"{self.partition_path(zone, ds)}/{SUCCESS}"
        if not self.exists(zone, ds):
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
            with self.lock(ds, purpose=f"publish {Zone(zone)}/ds={as_date(ds).isoformat()}"):
                self._recover_locked(zone, ds)  # an earlier publish cut short goes first
                self._publish(zone, ds, tmp, final)
        except BaseException:
            if self._publisher.journal_names(self._journal_path(zone, ds), tmp):
                # The old partition may be gone already: this copy is the data now.
                log.error(
                    "publishing %s was cut short; the complete new copy is kept at %s and the "
                    "next read or write of the partition finishes the publish",
                    self.uri(final),
                    self.uri(tmp),
                )
            elif self.fs.exists(tmp):
                self.fs.rm(tmp, recursive=True)
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
        with self.lock(ds, purpose=f"move {Zone(src)} -> {Zone(dst)}"):
            dst_path = self._copy_partition(
                ds, src, dst, {**(meta or {}), "moved_from": str(Zone(src))}, files
            )
            src_path = self.partition_path(src, ds)
            self.fs.rm(src_path, recursive=True)
        log.info("moved %s -> %s", self.uri(src_path), self.uri(dst_path))
        return dst_path

    def copy(self, ds: str | dt.date, src: Zone, dst: Zone, *, meta: dict | None = None) -> str:
        """Copy a complete partition to another zone (raw -> validated keeps raw as the record)."""
        with self.lock(ds, purpose=f"copy {Zone(src)} -> {Zone(dst)}"):
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
        with self.lock(ds, purpose=f"remove {Zone(zone)}"):
            dropped = self._drop_pending(zone, ds)  # else recovery would bring it back later
            if not self.fs.exists(path):
                return dropped
            self.fs.rm(path, recursive=True)
        log.warning("removed %s: %s", self.uri(path), reason)
        return True

    # -- internals -----------------------------------------------------------------------
    def _put(self, path: str, data: bytes) -> None:
        with self.fs.open(path, "wb") as f:
            f.write(data)

    def _publish(self, zone: Zone, ds: str | dt.date, tmp: str, final: str) -> None:
        """Journal, swap, clean up. Call with the date's lock held."""
        journal = self._journal_path(zone, ds)
        self._put(journal, self._publisher.journal_record(tmp, final))
        self._publisher.swap_in(tmp, final, journal)
        self._publisher.finish(journal, tmp)

    # -- locking and recovery ------------------------------------------------------------
    @contextmanager
    def lock(
        self, ds: str | dt.date, *, purpose: str = "write", timeout_s: float | None = None
    ) -> Iterator[None]:
        """Hold the lock of one date (every zone of it): other writers of the date wait.

        Re-entrant within a thread (``readmit`` holds it around the writes it makes). Local
        lakes ``flock`` a file under ``_locks/`` (the kernel drops it when its holder dies, so
        a crash leaves no stale lock); object stores write a lock object with an owner and an
        expiry that the holder renews (:mod:`anomalyops.lake_lock`). Raises
        :class:`~anomalyops.lake_lock.PartitionLocked` after ``timeout_s`` (default
        ``ANOMALYOPS_LAKE_LOCK__TIMEOUT_S``).
        """
        timeout = self.lock_settings.timeout_s if timeout_s is None else timeout_s
        with date_lock(
            self.fs,
            self.root,
            self.url,
            as_date(ds).isoformat(),
            purpose=purpose,
            settings=self.lock_settings,
            timeout=timeout,
            local=self._publisher.renames_directories,
        ):
            yield

    def _journal_path(self, zone: Zone, ds: str | dt.date) -> str:
        return f"{self.zone_path(zone)}/_tmp/ds={as_date(ds).isoformat()}{JOURNAL_SUFFIX}"

    def recover(self, zone: Zone, ds: str | dt.date, *, wait: bool = True) -> bool:
        """Finish a publish of this partition that was cut short; True if there was one.

        With ``wait=False`` (readers) a date whose lock is held is left to its writer.
        """
        if not self.fs.exists(self._journal_path(zone, ds)):
            return False
        try:
            with self.lock(ds, purpose=f"recover {Zone(zone)}", timeout_s=None if wait else 0.0):
                return self._recover_locked(zone, ds)
        except PartitionLocked:
            if wait:
                raise
            return False
        except OSError as exc:
            if wait:
                raise
            # A reader (maybe with read-only access) must not fail on a writer's leftovers.
            log.warning(
                "could not finish the publish of %s: %s",
                self.uri(self.partition_path(zone, ds)),
                exc,
            )
            return False

    def _recover_locked(self, zone: Zone, ds: str | dt.date) -> bool:
        return self._publisher.complete(self._journal_path(zone, ds), self.partition_path(zone, ds))

    def _drop_pending(self, zone: Zone, ds: str | dt.date) -> bool:
        return self._publisher.drop(self._journal_path(zone, ds), self.partition_path(zone, ds))

    def _recover_zone(self, zone: Zone) -> None:
        try:
            entries = self.fs.ls(f"{self.zone_path(zone)}/_tmp", detail=False)
        except FileNotFoundError:
            return
        for entry in entries:
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            match = _PARTITION_RE.match(name[: -len(JOURNAL_SUFFIX)])
            if name.endswith(JOURNAL_SUFFIX) and match:
                self.recover(zone, match.group(1), wait=False)
