"""Async jobs in-process: submit, poll, download, failures, restarts, expiry, ownership."""

from __future__ import annotations

import time

import numpy as np
import pytest

from anomalyops_api.job_record import JobStatus, owner_of
from anomalyops_api.job_store import JobStore
from anomalyops_api.scoring import InputFormat, OutputFormat
from tests.helpers.api import (
    ADMIN_KEY,
    KEY,
    OTHER_KEY,
    csv_bytes,
    expected,
    make_frame,
    parquet_bytes,
    publish,
    read_csv_reply,
    submit,
    upload,
    wait_done,
)

H = {"X-API-Key": KEY}


@pytest.fixture
def serving(tmp_path):
    publish(tmp_path / "serving", 3, scale=1.0)
    return tmp_path / "serving"


def test_submit_poll_download(serving, start_app) -> None:
    frame = make_frame(20_000)
    with start_app(keys=[KEY, OTHER_KEY], admin_key=ADMIN_KEY, csv_block_bytes=64 * 1024) as client:
        r = submit(client, csv_bytes(frame), name="day.csv")
        assert r.status_code == 202, r.text
        job = r.json()
        assert r.headers["location"].endswith(f"/v1/jobs/{job['id']}")
        assert job["status"] in ("queued", "running") and job["filename"] == "day.csv"
        job = wait_done(client, job["id"])
        assert job["status"] == "succeeded", job
        assert (job["rows_done"], job["rows_total"], job["progress"]) == (20_000, 20_000, 1.0)
        assert job["model_version"] == 3 and job["threshold"] == 3.0
        result = client.get(job["result_url"], headers=H)
        assert result.status_code == 200
        assert result.headers["x-model-version"] == "3"
        assert f'filename="{job["id"]}.csv"' in result.headers["content-disposition"]
        reply = read_csv_reply(result.content)
        np.testing.assert_allclose(reply["anomaly_score"], expected(frame), rtol=1e-5)
        # Another key cannot see it; the admin key can.
        assert (
            client.get(f"/v1/jobs/{job['id']}", headers={"X-API-Key": OTHER_KEY}).status_code == 404
        )
        assert (
            client.get(f"/v1/jobs/{job['id']}", headers={"X-API-Key": ADMIN_KEY}).status_code == 200
        )
        # Delete: gone, files too.
        assert client.delete(f"/v1/jobs/{job['id']}", headers=H).status_code == 204
        assert client.get(f"/v1/jobs/{job['id']}", headers=H).status_code == 404
        assert not (client.app.state.jobs.store.job_dir(job["id"])).exists()


def test_json_result_and_parquet_input(serving, start_app) -> None:
    frame = make_frame(300)
    with start_app() as client:
        r = submit(
            client,
            parquet_bytes(frame),
            name="d.parquet",
            content_type="application/octet-stream",
            params={"format": "json"},
        )
        job = wait_done(client, r.json()["id"])
        assert job["input_format"] == "parquet" and job["output_format"] == "json"
        body = client.get(job["result_url"]).json()
        assert body["model_version"] == 3 and body["rows"] == 300


def test_parquet_result_downloads_as_parquet(serving, start_app) -> None:
    import io

    import pyarrow.parquet as pq

    frame = make_frame(3000)
    with start_app() as client:
        r = submit(client, csv_bytes(frame), params={"format": "parquet"})
        assert r.status_code == 202, r.text
        job = wait_done(client, r.json()["id"])
        assert job["status"] == "succeeded" and job["output_format"] == "parquet"
        result = client.get(job["result_url"])
        assert result.headers["content-type"] == "application/vnd.apache.parquet"
        assert f'filename="{job["id"]}.parquet"' in result.headers["content-disposition"]
        table = pq.read_table(io.BytesIO(result.content))
        assert table.num_rows == 3000
        np.testing.assert_allclose(
            table.column("anomaly_score").to_numpy(), expected(frame), rtol=1e-5
        )
        # The synchronous endpoint answers Parquet for the Accept header too.
        sync = upload(
            client, csv_bytes(frame), headers={"Accept": "application/vnd.apache.parquet"}
        )
        assert sync.status_code == 200, sync.text
        assert pq.read_table(io.BytesIO(sync.content)).num_rows == 3000


def test_jobs_are_listed_per_key_newest_first(serving, start_app) -> None:
    with start_app(keys=[KEY, OTHER_KEY], admin_key=ADMIN_KEY) as client:
        mine = [submit(client, csv_bytes(make_frame(50))).json()["id"] for _ in range(3)]
        theirs = submit(client, csv_bytes(make_frame(50)), key=OTHER_KEY).json()["id"]
        for job_id in mine:
            wait_done(client, job_id)
        wait_done(client, theirs, key=OTHER_KEY)
        listed = client.get("/v1/jobs", headers=H).json()
        assert [j["id"] for j in listed["jobs"]] == mine[::-1] and listed["limit"] == 100
        assert all(j["result_url"] for j in listed["jobs"])
        assert [j["id"] for j in client.get("/v1/jobs?limit=1", headers=H).json()["jobs"]] == [
            mine[-1]
        ]
        admin = client.get("/v1/jobs", headers={"X-API-Key": ADMIN_KEY}).json()["jobs"]
        assert {j["id"] for j in admin} == {*mine, theirs}
        assert client.get("/v1/jobs?status=failed", headers=H).json()["jobs"] == []
        bad = client.get("/v1/jobs?status=nonsense", headers=H)
        assert bad.status_code == 422 and "status" in bad.text
        assert client.get("/v1/jobs?limit=100000", headers=H).status_code == 422
        assert client.get("/v1/jobs").status_code == 401


def test_header_problems_are_refused_at_submission(serving, start_app) -> None:
    with start_app(max_job_upload_bytes=1000) as client:
        r = submit(client, csv_bytes(make_frame(5).drop(columns=["vibration"])))
        assert r.status_code == 422 and r.json()["columns"] == ["vibration"]
        assert submit(client, csv_bytes(make_frame(100))).status_code == 413
        assert submit(client, b"", content_type="text/csv").status_code == 400
        # Nothing was queued, no files left behind.
        store = client.app.state.jobs.store
        assert store.ids() == set()
        assert [p for p in store.root.iterdir() if p.is_dir()] == []


def test_row_level_failure_fails_the_job_with_the_sync_error(serving, start_app) -> None:
    frame = make_frame(1000).astype({"flow_rate": object})
    frame.loc[900, "flow_rate"] = "?"
    with start_app() as client:
        job = wait_done(client, submit(client, csv_bytes(frame)).json()["id"])
        assert job["status"] == "failed" and job["error_status"] == 422
        assert (job["error"]["row"], job["error"]["column"]) == (901, "flow_rate")
        r = client.get(f"/v1/jobs/{job['id']}/result")
        assert r.status_code == 409 and "row 901" in r.json()["detail"]


def test_jobs_survive_a_restart(serving, tmp_path, start_app) -> None:
    frame = make_frame(500)
    a, b = "a" * 32, "b" * 32
    store = JobStore(tmp_path / "state" / "jobs")
    store.open()

    def add(job_id: str) -> None:
        store.job_dir(job_id).mkdir()
        store.input_path(job_id).write_bytes(csv_bytes(frame))
        store.create(
            job_id,
            owner=owner_of(KEY),
            filename="x.csv",
            input_format=InputFormat.CSV,
            output_format=OutputFormat.CSV,
            input_bytes=1,
        )

    # b: started 3 times by processes that all died; a: running once when its process died.
    add(b)
    for attempt in (1, 2, 3):
        assert store.claim_next().attempts == attempt
        if attempt < 3:
            store.requeue(b)
    add(a)
    store.claim_next()
    (store.root / "orphan").mkdir()  # an upload that never became a job
    with start_app(keys=[KEY], job_max_attempts=3) as client:
        job = wait_done(client, a)
        assert job["status"] == "succeeded" and job["attempts"] == 2
        job = client.get(f"/v1/jobs/{b}", headers=H).json()
        assert job["status"] == "failed" and "interrupted" in job["error"]["detail"]
        assert not (store.root / "orphan").exists()


def test_a_queued_job_is_run_after_a_restart(serving, start_app) -> None:
    with start_app(keys=[KEY]) as client:
        client.portal.call(client.app.state.jobs.stop)  # no worker: the job stays queued
        job_id = submit(client, csv_bytes(make_frame(50))).json()["id"]
        time.sleep(0.3)
        assert client.get(f"/v1/jobs/{job_id}", headers=H).json()["status"] == "queued"
    with start_app(keys=[KEY]) as client:
        job = wait_done(client, job_id)
        assert job["status"] == "succeeded" and job["rows_done"] == 50


def test_a_running_job_is_requeued_by_a_graceful_shutdown(serving, start_app) -> None:
    frame = make_frame(300_000)
    with start_app(keys=[KEY], csv_block_bytes=64 * 1024) as client:
        job_id = submit(client, csv_bytes(frame)).json()["id"]
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{job_id}", headers=H).json()["rows_done"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    # Shut down mid-job: back in the queue, partial output gone, input kept.
    store = JobStore(serving.parent / "state" / "jobs")
    job = store.get(job_id)
    assert (job.status, job.rows_done, job.attempts) == (JobStatus.QUEUED, 0, 1)
    assert store.input_path(job_id).exists()
    assert list(store.job_dir(job_id).glob("result*")) == []
    with start_app(keys=[KEY]) as client:
        job = wait_done(client, job_id, timeout=60)
        assert job["status"] == "succeeded" and job["attempts"] == 2
        assert job["rows_done"] == 300_000


def test_queue_limit_is_429(serving, start_app) -> None:
    with start_app(max_queued_jobs=2) as client:
        client.portal.call(client.app.state.jobs.stop)
        assert submit(client, csv_bytes(make_frame(10))).status_code == 202
        assert submit(client, csv_bytes(make_frame(10))).status_code == 202
        r = submit(client, csv_bytes(make_frame(10)))
        assert r.status_code == 429 and "queued" in r.json()["detail"]
        assert "anomalyops_api_jobs_queued 2.0" in client.get("/metrics").text


def test_results_expire(serving, start_app) -> None:
    with start_app(job_ttl_s=0.4) as client:
        job = wait_done(client, submit(client, csv_bytes(make_frame(10))).json()["id"])
        assert job["status"] == "succeeded"
        deadline = time.monotonic() + 5
        while client.get(f"/v1/jobs/{job['id']}").json()["status"] != "expired":
            assert time.monotonic() < deadline, "never expired"
            time.sleep(0.05)
        assert client.get(f"/v1/jobs/{job['id']}/result").status_code == 410
        assert not client.app.state.jobs.store.job_dir(job["id"]).exists()
