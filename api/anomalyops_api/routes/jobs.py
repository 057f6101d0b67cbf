"""``/v1/jobs``: score big files asynchronously; the state survives restarts."""

from __future__ import annotations

import shutil
from functools import partial
from typing import Annotated

import anyio
from fastapi import APIRouter, Path, Query, Request, Response, status

from anomalyops_api.deps import (
    ActiveModelDep,
    Caller,
    CallerDep,
    JobsDep,
    MetricsDep,
    SettingsDep,
    UploadGateDep,
)
from anomalyops_api.errors import Conflict, Gone, NotFound, RateLimited
from anomalyops_api.job_record import Job, JobStatus, timestamp
from anomalyops_api.job_service import JobService
from anomalyops_api.limits import OverQuota, job_limits
from anomalyops_api.routes.common import UPLOAD_BODY, BigChunkFileResponse, error_responses
from anomalyops_api.routes.scoring import FormatQuery, model_headers
from anomalyops_api.schemas import ErrorResponse, JobListResponse, JobResponse
from anomalyops_api.scoring import OutputFormat, check_columns, detect_format
from anomalyops_api.uploads import receive_upload

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The id POST returned.")]


def job_reply(request: Request, job: Job) -> JobResponse:
    progress = None
    if job.rows_total:
        progress = min(job.rows_done / job.rows_total, 1.0)
    elif job.status is JobStatus.SUCCEEDED:
        progress = 1.0
    error = None
    if job.error is not None:
        error = ErrorResponse(detail=job.error, **(job.error_extra or {}))
    result_url = None
    if job.status is JobStatus.SUCCEEDED:
        result_url = str(request.url_for("get_job_result", job_id=job.id))
    return JobResponse(
        id=job.id,
        status=job.status,
        created_at=timestamp(job.created_at),
        started_at=timestamp(job.started_at),
        finished_at=timestamp(job.finished_at),
        expires_at=timestamp(job.expires_at),
        filename=job.filename,
        input_format=job.input_format,
        output_format=job.output_format,
        input_bytes=job.input_bytes,
        rows_done=job.rows_done,
        rows_total=job.rows_total,
        progress=progress,
        attempts=job.attempts,
        model_version=job.model_version,
        threshold=job.threshold,
        error=error,
        error_status=job.error_status,
        result_url=result_url,
    )


async def _owned_job(jobs: JobService, job_id: str, caller: Caller) -> Job:
    job = await anyio.to_thread.run_sync(jobs.store.get, job_id)
    if job is None or not (caller.admin or job.owner == caller.owner):
        # Another key's job is reported as absent: ids are not an oracle.
        raise NotFound(f"no job {job_id}")
    return job


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Submit a file for asynchronous scoring",
    openapi_extra=UPLOAD_BODY,
    responses=error_responses(400, 401, 408, 413, 415, 422, 429, 503, 507),
)
async def submit_job(
    request: Request,
    response: Response,
    caller: CallerDep,
    model: ActiveModelDep,
    jobs: JobsDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    gate: UploadGateDep,
    format: FormatQuery = None,
) -> JobResponse:
    """Answers 202 as soon as the file is on disk and its header has the model's columns;
    poll `GET /v1/jobs/{id}` and download from `result_url`. The job is scored by the
    version served when it starts. Row-level problems fail the job with the same error
    body `POST /v1/score` would answer."""
    out_format = format or OutputFormat.CSV
    if await anyio.to_thread.run_sync(jobs.queue_full):
        raise RateLimited(
            f"{settings.max_queued_jobs} jobs are already queued; retry later", retry_after=30
        )
    if (
        await anyio.to_thread.run_sync(jobs.store.count_owned, caller.owner)
        >= settings.max_key_jobs
    ):
        raise OverQuota(
            "this API key already has too many stored jobs; download and delete finished "
            "ones (DELETE /v1/jobs/{id}) or wait for them to expire",
            "max_key_jobs",
            settings.max_key_jobs,
            retry_after=60,
        )
    job_id, job_dir = jobs.new_job_dir()
    try:
        with gate.admitted(caller.owner, job_dir) as ticket:
            upload = await receive_upload(
                request,
                jobs.store.input_path(job_id),
                settings.max_job_upload_bytes,
                ticket=ticket,
                min_free_disk=settings.min_free_disk_bytes,
                timeout=(settings.max_job_upload_seconds, "max_job_upload_seconds"),
            )
        ticket.done_with_dir()  # job dirs are not in the spool dir the sweeper cleans
        metrics.upload_bytes.inc(upload.size)
        fmt = detect_format(upload.path, upload.content_type, upload.filename)
        await anyio.to_thread.run_sync(check_columns, upload.path, fmt, model, job_limits(settings))
        job = await anyio.to_thread.run_sync(
            partial(
                jobs.store.create,
                job_id,
                owner=caller.owner,
                filename=upload.filename,
                input_format=fmt,
                output_format=out_format,
                input_bytes=upload.size,
            )
        )
    except BaseException:
        shutil.rmtree(job_dir, ignore_errors=True)
        raise
    jobs.submitted()
    response.headers["Location"] = str(request.url_for("get_job", job_id=job_id))
    return job_reply(request, job)


MAX_LISTED_JOBS = 1000


@router.get("", summary="List your jobs, newest first", responses=error_responses(401, 422))
async def list_jobs(
    request: Request,
    caller: CallerDep,
    jobs: JobsDep,
    state: Annotated[
        JobStatus | None, Query(alias="status", description="Only jobs in this state.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED_JOBS, description="At most this many.")] = 100,
) -> JobListResponse:
    """The jobs submitted with the caller's key (an admin key sees every key's), with the
    same fields as `GET /v1/jobs/{id}`; finished jobs stay listed until purged."""
    owner = None if caller.admin else caller.owner
    found = await anyio.to_thread.run_sync(partial(jobs.store.list_owned, owner, state, limit))
    return JobListResponse(jobs=[job_reply(request, job) for job in found], limit=limit)


@router.get(
    "/{job_id}", summary="Status and progress of a job", responses=error_responses(401, 404)
)
async def get_job(request: Request, job_id: JobId, caller: CallerDep, jobs: JobsDep) -> JobResponse:
    return job_reply(request, await _owned_job(jobs, job_id, caller))


@router.get(
    "/{job_id}/result",
    summary="Download a finished job's result",
    response_model=None,
    responses={
        200: {
            "description": "The scored file (CSV, JSON or Parquet, as chosen at submission).",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {},
                OutputFormat.PARQUET.media_type: {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **error_responses(401, 404, 409, 410),
    },
)
async def get_job_result(job_id: JobId, caller: CallerDep, jobs: JobsDep) -> BigChunkFileResponse:
    job = await _owned_job(jobs, job_id, caller)
    if job.status is JobStatus.EXPIRED:
        raise Gone(f"job {job_id}'s result expired and was deleted")
    if job.status is JobStatus.FAILED:
        raise Conflict(f"job {job_id} failed: {job.error}", **(job.error_extra or {}))
    if job.status is not JobStatus.SUCCEEDED:
        done = f"{job.rows_done} of {job.rows_total or '?'} rows"
        raise Conflict(
            f"job {job_id} is {job.status.value} ({done}); try again later", retry_after=2
        )
    assert job.model_version is not None and job.threshold is not None
    return BigChunkFileResponse(
        jobs.store.result_path(job),
        media_type=job.output_format.media_type,
        filename=f"{job_id}.{job.output_format.value}",
        headers=model_headers(job.model_version, job.threshold, job.rows_done),
    )


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a queued or finished job and its files",
    responses=error_responses(401, 404, 409),
)
async def delete_job(job_id: JobId, caller: CallerDep, jobs: JobsDep, metrics: MetricsDep) -> None:
    job = await _owned_job(jobs, job_id, caller)
    if not await anyio.to_thread.run_sync(jobs.store.delete_unless_running, job_id):
        raise Conflict(f"job {job_id} is running; delete it when it has finished")
    if job.status is JobStatus.QUEUED:
        metrics.jobs_queued.dec()
    await anyio.to_thread.run_sync(
        partial(shutil.rmtree, jobs.store.job_dir(job_id), ignore_errors=True)
    )
