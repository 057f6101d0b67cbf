"""Async scoring jobs that survive a restart: SQLite rows + one directory per job.

``<jobs_dir>/jobs.sqlite`` holds the state; ``<jobs_dir>/<id>/`` holds the uploaded input
(until the job finishes) and the result (until it expires). Restart policy: a job found
``running`` at start-up was interrupted (crash, kill, deploy); it is re-queued and scored
from the beginning, unless it has already been started ``job_max_attempts`` times, then it
is marked failed with that reason. A graceful shutdown re-queues running jobs the same way.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import anyio

from anomalyops_api.errors import ApiError
from anomalyops_api.limits import job_limits
from anomalyops_api.metrics import ApiMetrics
from anomalyops_api.registry import ModelRegistry
from anomalyops_api.scoring import (
    InputFormat,
    OutputFormat,
    count_rows_estimate,
    score_file,
)
from anomalyops_api.settings import ApiSettings
from anomalyops_api.traffic import TrafficMonitor

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.5


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"


FINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    expires_at REAL,
    filename TEXT,
    input_format TEXT NOT NULL,
    output_format TEXT NOT NULL,
    input_bytes INTEGER NOT NULL,
    rows_done INTEGER NOT NULL DEFAULT 0,
    rows_total INTEGER,
    model_version INTEGER,
    threshold REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    error_status INTEGER,
    error_extra TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
"""


@dataclass(frozen=True)
class Job:
    id: str
    owner: str
    status: JobStatus
    created_at: float
    started_at: float | None
    finished_at: float | None
    expires_at: float | None
    filename: str | None
    input_format: InputFormat
    output_format: OutputFormat
    input_bytes: int
    rows_done: int
    rows_total: int | None
    model_version: int | None
    threshold: float | None
    attempts: int
    error: str | None
    error_status: int | None
    error_extra: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        data = dict(row)
        data["status"] = JobStatus(data["status"])
        data["input_format"] = InputFormat(data["input_format"])
        data["output_format"] = OutputFormat(data["output_format"])
        data["error_extra"] = json.loads(data["error_extra"]) if data["error_extra"] else None
        return cls(**data)


def owner_of(api_key: str | None) -> str:
    """Jobs belong to the key that submitted them (stored as a hash, never the key)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16] if api_key else ""


class JobStore:
    """Synchronous SQLite access; call it from worker threads, not the event loop."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.db_path = self.root / "jobs.sqlite"

    def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per operation: safe across threads and cheap next to scoring.
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def input_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "input"

    def result_path(self, job: Job) -> Path:
        return self.job_dir(job.id) / f"result.{job.output_format.value}"

    def create(
        self,
        job_id: str,
        *,
        owner: str,
        filename: str | None,
        input_format: InputFormat,
        output_format: OutputFormat,
        input_bytes: int,
    ) -> Job:
        with self._connect() as db:
            db.execute(
                "INSERT INTO jobs (id, owner, status, created_at, filename, input_format,"
                " output_format, input_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    owner,
                    JobStatus.QUEUED.value,
                    time.time(),
                    filename,
                    input_format.value,
                    output_format.value,
                    input_bytes,
                ),
            )
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def ids(self) -> set[str]:
        with self._connect() as db:
            return {r[0] for r in db.execute("SELECT id FROM jobs")}

    def count(self, status: JobStatus) -> int:
        with self._connect() as db:
            return db.execute(
                "SELECT COUNT(*) FROM jobs WHERE status = ?", (status.value,)
            ).fetchone()[0]

    def count_owned(self, owner: str) -> int:
        """Jobs of one key that still hold files or a slot: everything not expired."""
        with self._connect() as db:
            return db.execute(
                "SELECT COUNT(*) FROM jobs WHERE owner = ? AND status != ?",
                (owner, JobStatus.EXPIRED.value),
            ).fetchone()[0]

    def list_owned(
        self, owner: str | None, status: JobStatus | None = None, limit: int = 100
    ) -> list[Job]:
        """Newest first; ``owner=None`` lists every key's jobs (admin)."""
        where, args = [], []
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if status is not None:
            where.append("status = ?")
            args.append(status.value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._connect() as db:
            # The clause is built from fixed text only; every value is a bound parameter.
            rows = db.execute(
                f"SELECT * FROM jobs {clause} ORDER BY created_at DESC, id LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [Job.from_row(r) for r in rows]

    def claim_next(self) -> Job | None:
        """Atomically move the oldest queued job to running."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT id FROM jobs WHERE status = ? ORDER BY created_at LIMIT 1",
                (JobStatus.QUEUED.value,),
            ).fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            db.execute(
                "UPDATE jobs SET status = ?, started_at = ?, attempts = attempts + 1,"
                " rows_done = 0 WHERE id = ?",
                (JobStatus.RUNNING.value, time.time(), row[0]),
            )
            db.execute("COMMIT")
        return self.get(row[0])

    def progress(self, job_id: str, rows_done: int, rows_total: int | None = None) -> None:
        with self._connect() as db:
            if rows_total is None:
                db.execute("UPDATE jobs SET rows_done = ? WHERE id = ?", (rows_done, job_id))
            else:
                db.execute(
                    "UPDATE jobs SET rows_done = ?, rows_total = ? WHERE id = ?",
                    (rows_done, rows_total, job_id),
                )

    def succeed(
        self, job_id: str, *, rows: int, model_version: int, threshold: float, ttl_s: float
    ) -> None:
        now = time.time()
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, expires_at = ?, rows_done = ?,"
                " rows_total = ?, model_version = ?, threshold = ? WHERE id = ?",
                (
                    JobStatus.SUCCEEDED.value,
                    now,
                    now + ttl_s,
                    rows,
                    rows,
                    model_version,
                    threshold,
                    job_id,
                ),
            )

    def fail(
        self,
        job_id: str,
        *,
        status_code: int,
        detail: str,
        extra: dict[str, Any] | None,
        ttl_s: float,
        model_version: int | None = None,
    ) -> None:
        now = time.time()
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, expires_at = ?, error = ?,"
                " error_status = ?, error_extra = ?, model_version = ? WHERE id = ?",
                (
                    JobStatus.FAILED.value,
                    now,
                    now + ttl_s,
                    detail,
                    status_code,
                    json.dumps(extra) if extra else None,
                    model_version,
                    job_id,
                ),
            )

    def requeue(self, job_id: str) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET status = ?, started_at = NULL, rows_done = 0 WHERE id = ?",
                (JobStatus.QUEUED.value, job_id),
            )

    def recover(self, max_attempts: int, ttl_s: float) -> tuple[list[str], list[str]]:
        """Jobs left ``running`` by a dead process: re-queue, or fail after max_attempts."""
        requeued, failed = [], []
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, attempts FROM jobs WHERE status = ?", (JobStatus.RUNNING.value,)
            ).fetchall()
        for job_id, attempts in rows:
            if attempts >= max_attempts:
                self.fail(
                    job_id,
                    status_code=500,
                    detail=f"interrupted by a service restart {attempts} times; giving up",
                    extra=None,
                    ttl_s=ttl_s,
                )
                failed.append(job_id)
            else:
                self.requeue(job_id)
                requeued.append(job_id)
        return requeued, failed

    def expire(self, now: float | None = None) -> list[str]:
        """Mark finished jobs past their TTL expired; returns their ids (files to delete)."""
        now = time.time() if now is None else now
        with self._connect() as db:
            ids = [
                r[0]
                for r in db.execute(
                    "SELECT id FROM jobs WHERE status IN (?, ?) AND expires_at <= ?",
                    (JobStatus.SUCCEEDED.value, JobStatus.FAILED.value, now),
                )
            ]
            db.executemany(
                "UPDATE jobs SET status = ? WHERE id = ?",
                [(JobStatus.EXPIRED.value, job_id) for job_id in ids],
            )
        return ids

    def purge_expired(self, retention_s: float, now: float | None = None) -> int:
        """Delete the rows of jobs expired more than ``retention_s`` ago (their result
        answered 410 meanwhile; afterwards 404); returns how many."""
        now = time.time() if now is None else now
        with self._connect() as db:
            cursor = db.execute(
                "DELETE FROM jobs WHERE status = ? AND expires_at <= ?",
                (JobStatus.EXPIRED.value, now - retention_s),
            )
            return cursor.rowcount

    def delete_unless_running(self, job_id: str) -> bool:
        """Delete a job's row unless a worker holds it; True when deleted."""
        with self._connect() as db:
            cursor = db.execute(
                "DELETE FROM jobs WHERE id = ? AND status != ?", (job_id, JobStatus.RUNNING.value)
            )
            return cursor.rowcount == 1


class _Interrupted(Exception):
    """The service is shutting down; the job goes back to the queue."""


class JobService:
    """Accepts jobs, runs them on worker tasks (scoring on threads) and expires results."""

    def __init__(
        self,
        settings: ApiSettings,
        registry: ModelRegistry,
        metrics: ApiMetrics,
        limiter: anyio.CapacityLimiter,
        traffic: TrafficMonitor | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = metrics
        self.limiter = limiter
        self.traffic = traffic
        self.store = JobStore(settings.resolved_jobs_dir)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        await anyio.to_thread.run_sync(self._recover)
        self._tasks = [
            asyncio.create_task(self._worker(i), name=f"job-worker-{i}")
            for i in range(self.settings.job_workers)
        ]
        self._tasks.append(asyncio.create_task(self._janitor(), name="job-janitor"))

    async def stop(self) -> None:
        self._stopping = True
        self._stop.set()
        self._wake.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _recover(self) -> None:
        self.store.open()
        requeued, failed = self.store.recover(
            self.settings.job_max_attempts, self.settings.job_ttl_s
        )
        for job_id in requeued:
            log.warning("job %s was interrupted by a restart; re-queued", job_id)
        for job_id in failed:
            log.error("job %s was interrupted too often; marked failed", job_id)
        known = self.store.ids()
        for path in self.store.root.iterdir():
            # Uploads that never became a job (the process died mid-upload).
            if path.is_dir() and path.name not in known:
                shutil.rmtree(path, ignore_errors=True)
        self._expire()
        self.metrics.jobs_queued.set(self.store.count(JobStatus.QUEUED))

    def new_job_dir(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex
        path = self.store.job_dir(job_id)
        path.mkdir(parents=True)
        return job_id, path

    def queue_full(self) -> bool:
        return self.store.count(JobStatus.QUEUED) >= self.settings.max_queued_jobs

    def submitted(self) -> None:
        self.metrics.jobs_queued.inc()
        self._wake.set()

    # -- workers ---------------------------------------------------------------------------

    async def _worker(self, index: int) -> None:
        while not self._stop.is_set():
            job = None
            if self.registry.active is not None:  # no model yet: leave jobs queued
                job = await anyio.to_thread.run_sync(self.store.claim_next)
            if job is None:
                self._wake.clear()
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                continue
            self.metrics.jobs_queued.dec()
            try:
                await anyio.to_thread.run_sync(self._run, job, limiter=self.limiter)
            except Exception:
                log.exception("job worker %d crashed on job %s", index, job.id)

    def _run(self, job: Job) -> None:
        model = self.registry.active
        assert model is not None
        store, settings = self.store, self.settings
        src = store.input_path(job.id)
        partial = store.job_dir(job.id) / f"result.partial.{job.output_format.value}"
        store.progress(job.id, 0, count_rows_estimate(src, job.input_format))
        last = time.monotonic()

        def on_progress(rows: int) -> None:
            nonlocal last
            if self._stopping:
                raise _Interrupted
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                store.progress(job.id, rows)
                last = time.monotonic()

        # Counted as served only if the whole file scores (committed after success).
        recorder = self.traffic.recorder(model) if self.traffic is not None else None
        started = time.perf_counter()
        log.info(
            "job %s started on model version %d (attempt %d)", job.id, model.version, job.attempts
        )
        try:
            result = score_file(
                src,
                job.input_format,
                model,
                partial,
                job.output_format,
                csv_block_bytes=settings.csv_block_bytes,
                parquet_batch_rows=settings.parquet_batch_rows,
                on_progress=on_progress,
                limits=job_limits(settings),
                on_scores=recorder,
            )
        except _Interrupted:
            partial.unlink(missing_ok=True)
            store.requeue(job.id)
            log.warning("job %s interrupted by shutdown; re-queued", job.id)
            return
        except ApiError as exc:
            partial.unlink(missing_ok=True)
            src.unlink(missing_ok=True)
            store.fail(
                job.id,
                status_code=exc.status_code,
                detail=exc.detail,
                extra=exc.extra,
                ttl_s=settings.job_ttl_s,
                model_version=model.version,
            )
            self.metrics.jobs_finished.labels(JobStatus.FAILED.value).inc()
            log.info("job %s failed: %s", job.id, exc.detail)
            return
        except Exception as exc:
            partial.unlink(missing_ok=True)
            log.exception("job %s crashed", job.id)
            store.fail(
                job.id,
                status_code=500,
                detail=f"internal error while scoring: {type(exc).__name__}",
                extra=None,
                ttl_s=settings.job_ttl_s,
                model_version=model.version,
            )
            self.metrics.jobs_finished.labels(JobStatus.FAILED.value).inc()
            return
        partial.replace(store.result_path(job))
        src.unlink(missing_ok=True)
        store.succeed(
            job.id,
            rows=result.rows,
            model_version=result.model_version,
            threshold=result.threshold,
            ttl_s=settings.job_ttl_s,
        )
        if recorder is not None:
            recorder.commit()
        self.metrics.jobs_finished.labels(JobStatus.SUCCEEDED.value).inc()
        self.metrics.rows_scored.labels("job").inc(result.rows)
        self.metrics.scoring_seconds.labels("job").observe(time.perf_counter() - started)
        log.info("job %s scored %d rows in %.1f s", job.id, result.rows, result.seconds)

    # -- expiry ----------------------------------------------------------------------------

    def _expire(self) -> None:
        for job_id in self.store.expire():
            shutil.rmtree(self.store.job_dir(job_id), ignore_errors=True)
            log.info("job %s expired; files deleted", job_id)
        purged = self.store.purge_expired(self.settings.expired_job_retention_s)
        if purged:
            log.info("deleted the records of %d long-expired jobs", purged)

    async def _janitor(self) -> None:
        interval = min(self.settings.job_ttl_s / 4, 60.0)
        while not self._stop.is_set():
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=interval)
            try:
                await anyio.to_thread.run_sync(self._expire)
            except Exception:
                log.exception("job expiry failed")


def timestamp(value: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value, dt.timezone.utc) if value is not None else None
