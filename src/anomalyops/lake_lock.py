"""The lake's per-date write lock: one writer of a date at a time, across threads and hosts.

Re-entrant within a thread. Local lakes ``flock`` a file under ``_locks/`` (the kernel drops
it when its holder dies, so a crash leaves no stale lock); object stores write a lock object
with an owner and an expiry that the holder renews (:class:`_ObjectLock`). Whoever waits too
long gets :class:`PartitionLocked`, naming the holder.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from anomalyops.settings import LakeLockSettings

log = logging.getLogger("anomalyops.lake")  # the lake's own logger, as before the split

LOCK_DIR = "_locks"


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


@contextmanager
def date_lock(
    fs,
    root: str,
    url: str,
    day: str,
    *,
    purpose: str,
    settings: LakeLockSettings,
    timeout: float,
    local: bool,
) -> Iterator[None]:
    """Hold the lock of ``day`` in the lake at ``root`` (``url`` names it in errors).

    ``local``: the filesystem renames directories, so it is a local disk with ``flock``.
    """
    with _HELD_GUARD:
        held = _HELD.setdefault((str(fs.protocol), root, day), _HeldLock())
    me = threading.get_ident()
    if held.owner == me:
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
        return
    deadline = time.monotonic() + timeout
    if not held.mutex.acquire(timeout=timeout):
        raise _locked_error(url, day, "another thread of this process", timeout)
    try:
        held.owner, held.depth = me, 1
        path = f"{root}/{LOCK_DIR}/ds={day}.lock"
        if local:
            with _file_lock(path, url, day, purpose, deadline, timeout, settings.poll_s):
                yield
        else:
            lock = _ObjectLock(fs, path, settings, purpose)
            try:
                lock.acquire(deadline)
            except PartitionLocked as exc:
                raise _locked_error(url, day, str(exc), timeout) from None
            try:
                yield
            finally:
                lock.release()
    finally:
        held.owner, held.depth = None, 0
        held.mutex.release()


@contextmanager
def _file_lock(
    path: str, url: str, day: str, purpose: str, deadline: float, timeout: float, poll_s: float
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
                    raise _locked_error(url, day, holder, timeout) from None
                time.sleep(poll_s)
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


def _locked_error(url: str, day: str, holder: str, timeout: float) -> PartitionLocked:
    return PartitionLocked(
        f"date {day} of the lake {url} is being written by {holder}; gave up after "
        f"{timeout:g} s (ANOMALYOPS_LAKE_LOCK__TIMEOUT_S). Retry when that writer is done."
    )
