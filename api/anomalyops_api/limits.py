"""Bounds on the work one request can cause: sizes, rows, time, disk, uploads in flight.

Every refusal is a :class:`LimitExceeded` whose body names the setting (``limit``) and its
value, so an operator knows which ``ANOMALYOPS_API_*`` variable to raise.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anomalyops_api.errors import ApiError
from anomalyops_api.settings import ApiSettings

ENV_PREFIX = "ANOMALYOPS_API_"


class LimitExceeded(ApiError):
    """``<what> (limit <setting> = <value>, set by ANOMALYOPS_API_<SETTING>)``."""

    def __init__(self, what: str, setting: str, value: float | int, **kw: Any) -> None:
        super().__init__(
            f"{what} (limit {setting} = {value}, set by {ENV_PREFIX}{setting.upper()})",
            limit=setting,
            **kw,
        )


class TooLarge(LimitExceeded):
    """Bytes, rows or result size over a bound."""

    kind = "too_large"


class TooSlow(LimitExceeded):
    kind = "too_slow"


class UploadTimedOut(LimitExceeded):
    kind = "upload_timeout"


class OverQuota(LimitExceeded):
    """One API key's share (bytes in flight, stored jobs) is used up."""

    kind = "over_quota"


class TooBusy(LimitExceeded):
    """The whole service's share (uploads in flight) is used up."""

    kind = "busy"


class DiskFull(LimitExceeded):
    kind = "disk_full"


def check_free_disk(path: Path, min_free: int, incoming: int = 0) -> None:
    """:class:`DiskFull` when writing ``incoming`` more bytes under ``path`` would leave less than
    ``min_free`` bytes free."""
    if min_free <= 0 and incoming <= 0:
        return
    free = shutil.disk_usage(path).free
    if free - incoming < min_free:
        raise DiskFull(
            f"not enough free disk space ({free} bytes free, {incoming} more needed)",
            "min_free_disk_bytes",
            min_free,
        )


@dataclass(frozen=True)
class ScoreLimits:
    """What one scoring run may consume; None means unbounded (library use, tests)."""

    max_decompressed_bytes: int | None = None
    max_rows: int | None = None
    max_result_bytes: int | None = None
    min_free_disk_bytes: int = 0
    deadline: float | None = None
    """A ``time.monotonic()`` value after which scoring stops."""
    max_seconds: float | None = None
    decompressed_setting: str = "max_decompressed_bytes"
    rows_setting: str = "max_rows"
    escape_formulas: bool = False

    def check_time(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TooSlow(
                "scoring took longer than a synchronous request may; submit the file as a "
                "job (POST /v1/jobs)",
                "max_score_seconds",
                self.max_seconds if self.max_seconds is not None else 0,
            )

    def check_rows(self, rows: int) -> None:
        if self.max_rows is not None and rows > self.max_rows:
            raise TooLarge(
                f"the file has more than {self.max_rows} rows",
                self.rows_setting,
                self.max_rows,
            )

    def check_decompressed(self, size: int) -> None:
        if self.max_decompressed_bytes is not None and size > self.max_decompressed_bytes:
            raise TooLarge(
                f"the file expands to more than {self.max_decompressed_bytes} bytes of CSV",
                self.decompressed_setting,
                self.max_decompressed_bytes,
            )

    def check_result(self, path: Path) -> None:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        if self.max_result_bytes is not None and size > self.max_result_bytes:
            raise TooLarge(
                f"the scored result grew past {self.max_result_bytes} bytes",
                "max_result_bytes",
                self.max_result_bytes,
            )
        check_free_disk(path.parent, self.min_free_disk_bytes)


def sync_limits(settings: ApiSettings, deadline: float) -> ScoreLimits:
    return ScoreLimits(
        max_decompressed_bytes=settings.max_decompressed_bytes,
        max_rows=settings.max_rows,
        max_result_bytes=settings.max_result_bytes,
        min_free_disk_bytes=settings.min_free_disk_bytes,
        deadline=deadline,
        max_seconds=settings.max_score_seconds,
        escape_formulas=settings.csv_escape_formulas,
    )


def job_limits(settings: ApiSettings) -> ScoreLimits:
    return ScoreLimits(
        max_decompressed_bytes=settings.max_job_decompressed_bytes,
        max_rows=settings.max_job_rows,
        max_result_bytes=settings.max_result_bytes,
        min_free_disk_bytes=settings.min_free_disk_bytes,
        decompressed_setting="max_job_decompressed_bytes",
        rows_setting="max_job_rows",
        escape_formulas=settings.csv_escape_formulas,
    )


@dataclass
class _KeyUsage:
    bytes: int = 0
    uploads: int = 0


@dataclass
class UploadGate:
    """Admission control for uploads in flight, shared by ``/v1/score`` and ``/v1/jobs``.

    Also the record of live scratch dirs, so the spool sweeper never deletes one that a
    request still uses, however old it is."""

    max_uploads: int
    max_key_bytes: int
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _active: int = 0
    _keys: dict[str, _KeyUsage] = field(default_factory=dict)
    _live: set[Path] = field(default_factory=set)

    @property
    def active(self) -> int:
        return self._active

    def live_dirs(self) -> set[Path]:
        with self._lock:
            return set(self._live)

    def enter(self, owner: str, work_dir: Path) -> UploadTicket:
        with self._lock:
            if self._active >= self.max_uploads:
                raise TooBusy(
                    f"{self._active} uploads are already in progress; retry shortly",
                    "max_concurrent_uploads",
                    self.max_uploads,
                    retry_after=5,
                )
            self._active += 1
            self._keys.setdefault(owner, _KeyUsage()).uploads += 1
            self._live.add(work_dir)
        return UploadTicket(self, owner, work_dir)

    def _add(self, owner: str, size: int) -> None:
        with self._lock:
            usage = self._keys[owner]
            if usage.bytes + size > self.max_key_bytes:
                raise OverQuota(
                    "this API key's uploads in flight exceed the byte quota; wait for them "
                    "to finish",
                    "max_key_upload_bytes",
                    self.max_key_bytes,
                    retry_after=30,
                )
            usage.bytes += size

    def _release_upload(self, owner: str, size: int) -> None:
        with self._lock:
            self._active -= 1
            usage = self._keys[owner]
            usage.bytes -= size
            usage.uploads -= 1
            if usage.uploads == 0:
                del self._keys[owner]

    def _forget_dir(self, work_dir: Path) -> None:
        with self._lock:
            self._live.discard(work_dir)

    @contextmanager
    def admitted(self, owner: str, work_dir: Path) -> Iterator[UploadTicket]:
        """The upload counts against the caps inside the block; the dir stays live until
        :meth:`UploadTicket.done_with_dir` (the reply may still stream from it)."""
        ticket = self.enter(owner, work_dir)
        try:
            yield ticket
        finally:
            ticket.finish_upload()


class UploadTicket:
    def __init__(self, gate: UploadGate, owner: str, work_dir: Path) -> None:
        self.gate = gate
        self.owner = owner
        self.work_dir = work_dir
        self.bytes = 0
        self._uploading = True

    def add(self, size: int) -> None:
        """Count received bytes against the key's quota (:class:`OverQuota` above it)."""
        self.gate._add(self.owner, size)
        self.bytes += size

    def finish_upload(self) -> None:
        if self._uploading:
            self._uploading = False
            self.gate._release_upload(self.owner, self.bytes)

    def done_with_dir(self) -> None:
        self.gate._forget_dir(self.work_dir)
