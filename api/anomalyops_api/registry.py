"""Which model version is served, TF Serving style.

The serving directory holds integer-named version directories; only complete ones count and
the newest complete one is served, unless an operator pinned another. A new version is
loaded and warmed up on a worker thread *before* the handle is swapped; the swap is one
reference assignment, so a request that already took :attr:`ModelRegistry.active` finishes
on that version. A version that fails to load is remembered with a fingerprint of its files
and skipped until the files change or a back-off expires; whatever was serving keeps serving.
A pinned version that is gone or cannot load does not leave the service without a model: the
newest loadable version serves instead, and :attr:`ModelRegistry.pin_error` says why (in
``/v1/models``, ``/readyz`` and the ``anomalyops_api_model_pin_broken`` metric).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from anomalyops_api.metrics import ApiMetrics
from anomalyops_api.model import (
    LoadedModel,
    ModelLoadError,
    ModelMetadata,
    load_model,
    read_metadata,
)
from anomalyops_api.serving_dir import (
    Fingerprint,
    VersionOnDisk,
    read_pin,
    scan_versions,
    write_pin,
)

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 600.0

Loader = Callable[[Path, int], LoadedModel]


class VersionNotFound(LookupError):
    pass


@dataclass
class LoadFailure:
    fingerprint: Fingerprint
    error: str
    attempts: int
    failed_at: dt.datetime
    retry_at: float
    """``time.monotonic()`` after which the same files are tried again."""


@dataclass
class RefreshResult:
    previous_version: int | None
    version: int | None
    failed: dict[int, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.previous_version != self.version


class ModelRegistry:
    """Thread-safe holder of the served :class:`LoadedModel`; see the module docstring."""

    def __init__(
        self,
        model_dir: Path,
        *,
        metrics: ApiMetrics | None = None,
        pin_file: Path | None = None,
        retry_backoff_s: float = 30.0,
        warmup_rows: int = 1024,
        loader: Loader | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.metrics = metrics
        self.pin_file = pin_file
        self.retry_backoff_s = retry_backoff_s
        self._loader = loader or (lambda path, v: load_model(path, v, warmup_rows=warmup_rows))
        self._lock = threading.RLock()
        self._active: LoadedModel | None = None
        self._pinned: int | None = read_pin(self.pin_file) if self.pin_file else None
        self.pin_error: str | None = None
        """Why the pinned version is not being served (None when it is, or nothing is pinned)."""
        self.failures: dict[int, LoadFailure] = {}
        self.last_scan_at: dt.datetime | None = None
        self._metadata_cache: dict[tuple[int, Fingerprint], ModelMetadata | str] = {}
        if self.metrics:
            self.metrics.model_pinned.set(1 if self._pinned is not None else 0)

    @property
    def active(self) -> LoadedModel | None:
        return self._active

    @property
    def pinned(self) -> int | None:
        return self._pinned

    # -- loading -------------------------------------------------------------------------

    def refresh(self, *, retry_failed: bool = False) -> RefreshResult:
        """Scan the directory and serve what the policy says; never raises for a bad version.

        ``retry_failed`` ignores the back-off of versions that failed before (an operator
        asking for a reload means "try again now").
        """
        with self._lock:
            previous = self._active.version if self._active else None
            result = RefreshResult(previous_version=previous, version=previous)
            versions = [v for v in scan_versions(self.model_dir) if v.complete]
            self.last_scan_at = dt.datetime.now(dt.timezone.utc)
            candidates = sorted(versions, key=lambda v: v.version, reverse=True)
            if self._pinned is not None:
                if self._serve_pin(versions, previous, retry_failed, result):
                    result.version = self._active.version if self._active else None
                    return result
                # The pin cannot be served: follow the newest loadable version meanwhile.
                candidates = [v for v in candidates if v.version != self._pinned]
            elif not candidates and previous is not None:
                log.warning(
                    "no complete version left in %s; still serving %d from memory",
                    self.model_dir,
                    previous,
                )
            for candidate in candidates:
                if candidate.version == previous:
                    break  # everything newer failed or is backing off: keep serving this one
                if self._backing_off(candidate, retry_failed):
                    continue
                error = self._load_and_swap(candidate)
                if error is None:
                    break
                result.failed[candidate.version] = error
            result.version = self._active.version if self._active else None
            return result

    def _serve_pin(
        self,
        versions: list[VersionOnDisk],
        previous: int | None,
        retry_failed: bool,
        result: RefreshResult,
    ) -> bool:
        """Serve the pinned version; False (with :attr:`pin_error` set) if it cannot be."""
        pinned = self._pinned
        assert pinned is not None
        on_disk = next((v for v in versions if v.version == pinned), None)
        if previous == pinned:
            self._set_pin_error(
                None
                if on_disk
                else f"pinned version {pinned} is no longer on disk in {self.model_dir}; "
                "serving it from memory (after a restart the newest loadable version serves)"
            )
            return True
        if on_disk is None:
            problem = f"pinned version {pinned} is not on disk in {self.model_dir}"
        elif self._backing_off(on_disk, retry_failed):
            problem = f"pinned version {pinned} failed to load: {self.failures[pinned].error}"
        else:
            error = self._load_and_swap(on_disk)
            if error is None:
                self._set_pin_error(None)
                return True
            result.failed[pinned] = error
            problem = f"pinned version {pinned} failed to load: {error}"
        self._set_pin_error(
            f"{problem}; serving the newest loadable version instead until it can be loaded "
            "or POST /admin/unpin"
        )
        return False

    def _set_pin_error(self, error: str | None) -> None:
        if error != self.pin_error:  # log changes, not every poll
            if error:
                log.error("%s", error)
            elif self.pin_error:
                log.info("pinned version %s is served again", self._pinned)
        self.pin_error = error
        if self.metrics:
            self.metrics.model_pin_broken.set(1 if error else 0)

    def _backing_off(self, candidate: VersionOnDisk, retry_failed: bool) -> bool:
        failure = self.failures.get(candidate.version)
        if failure is None or failure.fingerprint != candidate.fingerprint:
            return False  # never failed, or rewritten since: try now
        return not retry_failed and time.monotonic() < failure.retry_at

    def _load_and_swap(self, candidate: VersionOnDisk) -> str | None:
        """Load ``candidate`` fully, then swap; returns the error message on failure."""
        try:
            model = self._loader(candidate.path, candidate.version)
        except Exception as exc:  # a bad version must never take the service down
            return self._record_failure(candidate, exc)
        previous = self._active
        self._active = model  # the atomic swap
        self.failures.pop(candidate.version, None)
        log.info(
            "serving model version %d (was %s); loaded and warmed up in %.2f s",
            model.version,
            previous.version if previous else "none",
            model.load_seconds,
        )
        if self.metrics:
            self.metrics.reloads.inc()
            self.metrics.model_version.set(model.version)
            self.metrics.load_seconds.observe(model.load_seconds)
            self.metrics.model_served(
                model.metadata, model.version, dt.datetime.now(dt.timezone.utc)
            )
        return None

    def _record_failure(self, candidate: VersionOnDisk, exc: Exception) -> str:
        previous = self.failures.get(candidate.version)
        attempts = previous.attempts + 1 if previous else 1
        backoff = min(self.retry_backoff_s * 2 ** (attempts - 1), MAX_BACKOFF_S)
        message = str(exc) if isinstance(exc, ModelLoadError) else f"{type(exc).__name__}: {exc}"
        self.failures[candidate.version] = LoadFailure(
            fingerprint=candidate.fingerprint,
            error=message,
            attempts=attempts,
            failed_at=dt.datetime.now(dt.timezone.utc),
            retry_at=time.monotonic() + backoff,
        )
        log.error(
            "model version %d failed to load (attempt %d; retry in %.0f s or when its files "
            "change): %s",
            candidate.version,
            attempts,
            backoff,
            message,
        )
        if self.metrics:
            self.metrics.reload_failures.inc()
        return message

    # -- pinning -------------------------------------------------------------------------

    def pin(self, version: int) -> LoadedModel:
        """Serve ``version`` until :meth:`unpin`; raises VersionNotFound or ModelLoadError."""
        with self._lock:
            on_disk = {v.version: v for v in scan_versions(self.model_dir)}
            candidate = on_disk.get(version)
            if candidate is None or not candidate.complete:
                state = "incomplete" if candidate else "not on disk"
                raise VersionNotFound(f"version {version} is {state} in {self.model_dir}")
            if self._active is None or self._active.version != version:
                error = self._load_and_swap(candidate)
                if error is not None:
                    raise ModelLoadError(error)
            self._set_pin(version)
            assert self._active is not None
            return self._active

    def unpin(self) -> RefreshResult:
        with self._lock:
            self._set_pin(None)
            return self.refresh(retry_failed=True)

    def _set_pin(self, version: int | None) -> None:
        self._pinned = version
        self._set_pin_error(None)
        if self.metrics:
            self.metrics.model_pinned.set(0 if version is None else 1)
        if self.pin_file is not None:
            write_pin(self.pin_file, version)

    # -- listing -------------------------------------------------------------------------

    def metadata(self, version: VersionOnDisk) -> ModelMetadata | str:
        """Metadata of a complete version, or the reason it is unreadable (cached)."""
        key = (version.version, version.fingerprint)
        if key not in self._metadata_cache:
            if len(self._metadata_cache) > 1024:  # versions rewritten in place pile up keys
                self._metadata_cache.clear()
            try:
                self._metadata_cache[key] = read_metadata(version.path)
            except ModelLoadError as exc:
                self._metadata_cache[key] = str(exc)
        return self._metadata_cache[key]


async def watch(registry: ModelRegistry, interval_s: float, stop: asyncio.Event) -> None:
    """Poll the serving directory until ``stop`` is set; loading runs on a worker thread."""
    while not stop.is_set():
        try:
            await anyio.to_thread.run_sync(registry.refresh)
        except Exception:  # keep watching whatever a scan throws (e.g. a vanished mount)
            log.exception("model directory scan failed")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
