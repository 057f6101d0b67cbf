"""Async scoring jobs: worker tasks that claim queued jobs and score them on threads, and
a janitor that expires old results.

Restart policy: a job found ``running`` at start-up was interrupted (crash, kill, deploy); it
is re-queued and scored from the beginning, unless it has already been started
``job_max_attempts`` times, then it is marked failed with that reason. A graceful shutdown
re-queues running jobs the same way.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import uuid
from contextlib import suppress
from pathlib import Path

import anyio

from anomalyops_api.errors import ApiError
from anomalyops_api.job_record import Job, JobAborted, JobStatus
from anomalyops_api.job_store import JobStore
from anomalyops_api.limits import job_limits
from anomalyops_api.logging_config import model_version_var
from anomalyops_api.metrics import ApiMetrics
from anomalyops_api.registry import ModelRegistry
from anomalyops_api.scoring import count_rows_estimate, score_file
from anomalyops_api.settings import ApiSettings
from anomalyops_api.traffic import TrafficMonitor

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.5


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
        # This worker thread runs in a copied context: the version stays on this job's lines.
        model_version_var.set(model.version)
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
            store.fail_with(job.id, exc, ttl_s=settings.job_ttl_s, model_version=model.version)
            self.metrics.jobs_finished.labels(JobStatus.FAILED.value).inc()
            log.info("job %s failed: %s", job.id, exc.detail)
            return
        except Exception as exc:
            partial.unlink(missing_ok=True)
            log.exception("job %s crashed", job.id)
            crashed = JobAborted(f"internal error while scoring: {type(exc).__name__}")
            store.fail_with(job.id, crashed, ttl_s=settings.job_ttl_s, model_version=model.version)
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
