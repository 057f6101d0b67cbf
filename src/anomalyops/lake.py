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
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum

import fsspec
import pandas as pd
import pyarrow.parquet as pq

from anomalyops import parquet_safety  # before any Parquet read: CVE-2023-47248
from anomalyops.settings import LakeLockSettings

log = logging.getLogger(__name__)

SUCCESS = "_SUCCESS"
DATA_FILE = "part-00000.parquet"
LOCK_DIR = "_locks"
JOURNAL_SUFFIX = ".publish.json"
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


class PartitionLocked(TimeoutError):
    """Another writer held a date's lock for longer than ``ANOMALYOPS_LAKE_LOCK__TIMEOUT_S``."""


@dataclass
class _HeldLock:
    """In-process state of one date's lock: threads queue on ``mutex``; the owner re-enters."""

    mutex: threading.Lock = field(default_factory=threading.Lock)
    owner: int | None = None
    depth: int = 0


_HELD: dict[tuple[str, str, str], _HeldLock] = {}
_HELD_GUARD = threading.Lock()


def _holder_record(purpose: str, token: str, expires_at: float | None = None) -> dict:
    record = {
        "owner": token,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "purpose": purpose,
        "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if expires_at is not None:
        record["expires_at"] = expires_at
    return record


def _describe_holder(raw: bytes | str) -> str:
    try:
        held = json.loads(raw)
        return f"{held['purpose']!r} (pid {held['pid']} on {held['host']}, since {held['since']})"
    except (ValueError, KeyError, TypeError):
        return "an unknown writer"


class _ObjectLock:
    """A lock object on a store without locks: owner + expiry, renewed while held.

    Best effort: without a conditional put (create-if-absent), two writers that find no lock
    at the same instant both write one; reading it back after a pause makes the later write
    win, which closes the race except when the second write lands after the first writer's
    read-back. A holder that dies stops renewing, and its lock is broken after ``ttl_s``.
    """

    def __init__(self, fs, path: str, settings: LakeLockSettings, purpose: str):
        self.fs, self.path, self.settings, self.purpose = fs, path, settings, purpose
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _read(self) -> dict | None:
        try:
            with self.fs.open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        try:
            held = json.loads(raw)
            return held if isinstance(held, dict) else {}
        except ValueError:
            return {}  # unreadable: treated as abandoned (expires_at 0) and broken

    def _write(self) -> None:
        record = _holder_record(self.purpose, self.token, time.time() + self.settings.ttl_s)
        with self.fs.open(self.path, "wb") as f:
            f.write(json.dumps(record).encode())

    def acquire(self, deadline: float) -> None:
        while True:
            held = self._read()
            if held is None or float(held.get("expires_at", 0)) < time.time():
                if held is not None:
                    log.warning(
                        "breaking the abandoned lake lock %s held by %s (not renewed for %.0f s)",
                        self.path,
                        _describe_holder(json.dumps(held)),
                        self.settings.ttl_s,
                    )
                self._write()
                time.sleep(min(self.settings.poll_s, 0.05))  # let a racing write land first
                held = self._read()
                if held is not None and held.get("owner") == self.token:
                    self._renewer = threading.Thread(target=self._renew, daemon=True)
                    self._renewer.start()
                    return
            if time.monotonic() >= deadline:
                raise PartitionLocked(
                    f"{self.path} is held by {_describe_holder(json.dumps(held or {}))}"
                )
            time.sleep(self.settings.poll_s)

    def _renew(self) -> None:
        while not self._stop.wait(self.settings.ttl_s / 3):
            held = self._read()
            if held is None or held.get("owner") != self.token:
                log.error(
                    "lost the lake lock %s to %s", self.path, _describe_holder(json.dumps(held))
                )
                return
            self._write()

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        held = self._read()
        if held is not None and held.get("owner") == self.token:
            self.fs.rm(self.path)


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
            if self._journal_names(zone, ds, tmp):
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

    def _swap_in(self, tmp: str, final: str, journal: str | None = None) -> None:
        if not self._renames_directories:
            self._publish_by_copy(tmp, final)
            return
        # Rename the old partition aside (not delete) before renaming the new one in, so that
        # at every instant one complete copy exists under a known name.
        old = f"{tmp}.replaced"
        replaced = self.fs.exists(final)
        if replaced:
            self.fs.mv(final, old, recursive=True)
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        try:
            self.fs.mv(tmp, final, recursive=True)
        except BaseException:
            if replaced:
                self.fs.mv(old, final, recursive=True)
            if journal is not None:
                self.fs.rm(journal)  # the old partition is back whole: nothing to finish
            raise
        if replaced:
            log.info("replaced partition %s", self.uri(final))

    @property
    def _renames_directories(self) -> bool:
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        return bool({"file", "local"} & set(protocols))

    def _publish_by_copy(self, tmp: str, final: str) -> None:
        """Object stores have no directory rename: hide the old partition, copy, marker last.

        Readers see either the old partition, none, or the new one (never a mix). The complete
        new copy in ``_tmp/`` is removed by the caller only once the marker is in place.
        """
        replaced = self.fs.exists(final)
        if self.fs.exists(f"{final}/{SUCCESS}"):
            self.fs.rm(f"{final}/{SUCCESS}")
        if replaced:
            self.fs.rm(final, recursive=True)
        files = sorted(self.fs.find(tmp), key=lambda path: path.endswith(f"/{SUCCESS}"))
        for path in files:
            self.fs.copy(path, final + path[len(tmp) :])
        if replaced:
            log.info("replaced partition %s", self.uri(final))

    def _publish(self, zone: Zone, ds: str | dt.date, tmp: str, final: str) -> None:
        """Journal, swap, clean up. Call with the date's lock held."""
        journal = self._journal_path(zone, ds)
        started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self._put(journal, json.dumps({"tmp": tmp, "final": final, "started_at": started}).encode())
        self._swap_in(tmp, final, journal)
        self._finish(journal, tmp)

    def _finish(self, journal: str, tmp: str | None) -> None:
        # The journal goes first: once it is gone nothing will re-publish from ``tmp``.
        if self.fs.exists(journal):
            self.fs.rm(journal)
        for leftover in (tmp, f"{tmp}.replaced") if tmp else ():
            if self.fs.exists(leftover):
                self.fs.rm(leftover, recursive=True)

    # -- locking and recovery ------------------------------------------------------------
    @contextmanager
    def lock(
        self, ds: str | dt.date, *, purpose: str = "write", timeout_s: float | None = None
    ) -> Iterator[None]:
        """Hold the lock of one date (every zone of it): other writers of the date wait.

        Re-entrant within a thread (``readmit`` holds it around the writes it makes). Local
        lakes ``flock`` a file under ``_locks/`` (the kernel drops it when its holder dies, so
        a crash leaves no stale lock); object stores write a lock object with an owner and an
        expiry that the holder renews (:class:`_ObjectLock`). Raises :class:`PartitionLocked`
        after ``timeout_s`` (default ``ANOMALYOPS_LAKE_LOCK__TIMEOUT_S``).
        """
        day = as_date(ds).isoformat()
        with _HELD_GUARD:
            held = _HELD.setdefault((str(self.fs.protocol), self.root, day), _HeldLock())
        me = threading.get_ident()
        if held.owner == me:
            held.depth += 1
            try:
                yield
            finally:
                held.depth -= 1
            return
        timeout = self.lock_settings.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        if not held.mutex.acquire(timeout=timeout):
            raise self._locked_error(day, "another thread of this process", timeout)
        try:
            held.owner, held.depth = me, 1
            path = f"{self.root}/{LOCK_DIR}/ds={day}.lock"
            if self._renames_directories:
                with self._file_lock(path, day, purpose, deadline, timeout):
                    yield
            else:
                lock = _ObjectLock(self.fs, path, self.lock_settings, purpose)
                try:
                    lock.acquire(deadline)
                except PartitionLocked as exc:
                    raise self._locked_error(day, str(exc), timeout) from None
                try:
                    yield
                finally:
                    lock.release()
        finally:
            held.owner, held.depth = None, 0
            held.mutex.release()

    @contextmanager
    def _file_lock(
        self, path: str, day: str, purpose: str, deadline: float, timeout: float
    ) -> Iterator[None]:
        import fcntl  # POSIX only, and only local lakes get here

        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        holder = _describe_holder(os.pread(fd, 4096, 0))
                        raise self._locked_error(day, holder, timeout) from None
                    time.sleep(self.lock_settings.poll_s)
            # Who holds it, for the error message of whoever waits (a dead holder's record is
            # simply overwritten: the lock itself died with it).
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(_holder_record(purpose, uuid.uuid4().hex)).encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _locked_error(self, day: str, holder: str, timeout: float) -> PartitionLocked:
        return PartitionLocked(
            f"date {day} of the lake {self.url} is being written by {holder}; gave up after "
            f"{timeout:g} s (ANOMALYOPS_LAKE_LOCK__TIMEOUT_S). Retry when that writer is done."
        )

    def _journal_path(self, zone: Zone, ds: str | dt.date) -> str:
        return f"{self.zone_path(zone)}/_tmp/ds={as_date(ds).isoformat()}{JOURNAL_SUFFIX}"

    def _read_journal(self, journal: str) -> dict:
        """The journal's record; ``{}`` if unreadable (a journal is written before anything
        is touched, so a torn one means the publish never started). Raises FileNotFoundError."""
        with self.fs.open(journal, "rb") as f:
            raw = f.read()
        try:
            record = json.loads(raw)
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    def _journal_names(self, zone: Zone, ds: str | dt.date, tmp: str) -> bool:
        try:
            return self._read_journal(self._journal_path(zone, ds)).get("tmp") == tmp
        except FileNotFoundError:
            return False

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
        journal = self._journal_path(zone, ds)
        try:
            record = self._read_journal(journal)
        except FileNotFoundError:
            return False  # nothing cut short, or another writer finished it meanwhile
        final, tmp = self.partition_path(zone, ds), record.get("tmp")
        marker = f"{tmp}/{SUCCESS}"
        if tmp and self.fs.exists(marker) and not self._same_marker(marker, f"{final}/{SUCCESS}"):
            log.warning(
                "finishing the publish of %s started at %s from %s (it was cut short)",
                self.uri(final),
                record.get("started_at", "?"),
                self.uri(tmp),
            )
            self._swap_in(tmp, final)
        else:
            log.warning("cleaning up after a finished publish of %s", self.uri(final))
        self._finish(journal, tmp)
        return True

    def _drop_pending(self, zone: Zone, ds: str | dt.date) -> bool:
        journal = self._journal_path(zone, ds)
        try:
            tmp = self._read_journal(journal).get("tmp")
        except FileNotFoundError:
            return False
        log.warning(
            "dropping the unfinished publish of %s", self.uri(self.partition_path(zone, ds))
        )
        self._finish(journal, tmp)
        return True

    def _same_marker(self, a: str, b: str) -> bool:
        try:
            with self.fs.open(a, "rb") as fa, self.fs.open(b, "rb") as fb:
                return fa.read() == fb.read()
        except FileNotFoundError:
            return False

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
