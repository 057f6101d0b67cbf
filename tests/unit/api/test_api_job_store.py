"""The SQLite job store: state transitions, restart recovery, expiry."""

from __future__ import annotations

from pathlib import Path

import pytest

from anomalyops_api.job_record import JobStatus, owner_of
from anomalyops_api.job_store import JobStore
from anomalyops_api.scoring import InputFormat, OutputFormat


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    s = JobStore(tmp_path / "jobs")
    s.open()
    return s


def new(store: JobStore, job_id: str) -> None:
    store.create(
        job_id,
        owner=owner_of("key"),
        filename="f.csv",
        input_format=InputFormat.CSV,
        output_format=OutputFormat.JSON,
        input_bytes=10,
    )


def test_lifecycle_and_persistence(store: JobStore, tmp_path: Path) -> None:
    new(store, "a")
    new(store, "b")
    job = store.get("a")
    assert job.status is JobStatus.QUEUED and job.output_format is OutputFormat.JSON
    assert job.owner == owner_of("key") != "key"  # the key itself is never stored
    claimed = store.claim_next()
    assert claimed.id == "a" and claimed.status is JobStatus.RUNNING and claimed.attempts == 1
    store.progress("a", 10, 100)
    store.progress("a", 20)
    assert (store.get("a").rows_done, store.get("a").rows_total) == (20, 100)
    store.succeed("a", rows=99, model_version=5, threshold=3.5, ttl_s=60)
    done = JobStore(tmp_path / "jobs").get("a")  # a new store (process) sees it
    assert done.status is JobStatus.SUCCEEDED and done.rows_total == 99 and done.model_version == 5
    assert done.expires_at == pytest.approx(done.finished_at + 60)
    assert store.claim_next().id == "b"
    assert store.claim_next() is None


def test_failure_keeps_the_error_body(store: JobStore) -> None:
    new(store, "a")
    store.claim_next()
    store.fail(
        "a",
        status_code=422,
        detail="row 3, column 'x': missing value",
        extra={"row": 3, "column": "x"},
        ttl_s=60,
        model_version=2,
    )
    job = store.get("a")
    assert (job.status, job.error_status, job.error_extra) == (
        JobStatus.FAILED,
        422,
        {"row": 3, "column": "x"},
    )


def test_recover_requeues_interrupted_jobs_then_gives_up(store: JobStore) -> None:
    new(store, "a")
    store.claim_next()  # attempt 1, then the process "dies"
    assert store.recover(max_attempts=2, ttl_s=60) == (["a"], [])
    assert store.get("a").status is JobStatus.QUEUED
    store.claim_next()  # attempt 2, dies again
    assert store.recover(max_attempts=2, ttl_s=60) == ([], ["a"])
    job = store.get("a")
    assert job.status is JobStatus.FAILED and "interrupted" in job.error


def test_expire_only_finished_jobs_past_ttl(store: JobStore) -> None:
    for job_id in "abc":
        new(store, job_id)
    store.claim_next()
    store.succeed("a", rows=1, model_version=1, threshold=1.0, ttl_s=10)
    store.claim_next()  # b running, c queued
    assert store.expire(now=0) == []
    import time

    assert store.expire(now=time.time() + 11) == ["a"]
    assert store.get("a").status is JobStatus.EXPIRED
    assert store.get("b").status is JobStatus.RUNNING


def test_delete_refuses_running_jobs(store: JobStore) -> None:
    new(store, "a")
    new(store, "b")
    store.claim_next()
    assert not store.delete_unless_running("a")
    assert store.delete_unless_running("b") and store.get("b") is None
