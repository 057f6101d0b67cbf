"""The job queue's persistence: SQLite rows + one directory per job.

``<jobs_dir>/jobs.sqlite`` holds the state; ``<jobs_dir>/<id>/`` holds the uploaded input
(until the job finishes) and the result (until it expires). Kept apart from the worker loop
(:mod:`anomalyops_api.job_service`) so either can change, and be tested, on its own.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from anomalyops_api.errors import ApiError, status_of
from anomalyops_api.job_record import Job, JobAborted, JobStatus
from anomalyops_api.scoring.formats import InputFormat, OutputFormat

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

    def fail_with(
        self, job_id: str, error: ApiError, *, ttl_s: float, model_version: int | None = None
    ) -> None:
        """Record ``error`` as the job's outcome: the body and status a request would get."""
        self.fail(
            job_id,
            status_code=status_of(error),
            detail=error.detail,
            extra=error.extra,
            ttl_s=ttl_s,
            model_version=model_version,
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
                gave_up = f"interrupted by a service restart {attempts} times; giving up"
                self.fail_with(job_id, JobAborted(gave_up), ttl_s=ttl_s)
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
