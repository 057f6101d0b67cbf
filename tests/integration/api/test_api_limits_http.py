"""Limits through HTTP: each refusal has the documented status and names its setting."""

from __future__ import annotations

import gzip
import io
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers.api import (
    ADMIN_KEY,
    KEY,
    OTHER_KEY,
    csv_bytes,
    make_frame,
    parquet_bytes,
    publish,
    read_csv_reply,
    upload,
)

KEYS = {"keys": [KEY, OTHER_KEY], "admin_key": ADMIN_KEY}


@pytest.fixture(autouse=True)
def serving(tmp_path):
    publish(tmp_path / "serving", 3, scale=1.0)


def wait_done(client, job_id: str, key: str = KEY) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": key}).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never finished")


def limit_refusal(response, status: int, limit: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["limit"] == limit and limit in body["detail"], body
    return body


def test_sync_rows_and_decompressed_limits(start_app) -> None:
    with start_app(max_rows=100, max_decompressed_bytes=50_000) as client:
        limit_refusal(upload(client, csv_bytes(make_frame(101))), 413, "max_rows")
        bomb = gzip.compress(csv_bytes(make_frame(2000)))
        limit_refusal(
            upload(client, bomb, name="d.csv.gz", content_type="application/gzip"),
            413,
            "max_decompressed_bytes",
        )
        assert upload(client, csv_bytes(make_frame(100))).status_code == 200


def test_a_job_over_its_row_limit_fails_naming_it(start_app) -> None:
    with start_app(max_job_rows=50) as client:
        r = upload(client, csv_bytes(make_frame(60)), path="/v1/jobs")
        assert r.status_code == 202
        job = wait_done(client, r.json()["id"])
        assert job["status"] == "failed" and job["error_status"] == 413
        assert job["error"]["limit"] == "max_job_rows"
        # A Parquet footer tells the row count: refused at submission, no job is queued.
        r = upload(
            client,
            parquet_bytes(make_frame(60)),
            name="d.parquet",
            content_type="application/vnd.apache.parquet",
            path="/v1/jobs",
        )
        limit_refusal(r, 413, "max_job_rows")


def test_a_job_with_a_struct_key_column_fails_with_422_and_the_server_stays_up(
    start_app,
) -> None:
    table = pa.Table.from_pandas(make_frame(10), preserve_index=False)
    station = pa.array([{"id": i} for i in range(10)])
    table = table.set_column(table.schema.get_field_index("station_id"), "station_id", station)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    with start_app() as client:
        r = upload(
            client,
            buf.getvalue(),
            name="d.parquet",
            content_type="application/vnd.apache.parquet",
            path="/v1/jobs",
        )
        assert r.status_code == 202, r.text
        job = wait_done(client, r.json()["id"])
        assert job["status"] == "failed" and job["error_status"] == 422
        assert "station_id" in job["error"]["detail"]
        sync = upload(
            client, buf.getvalue(), name="d.parquet", content_type="application/vnd.apache.parquet"
        )
        assert sync.status_code == 422 and sync.json()["column"] == "station_id"
        assert client.get("/readyz").status_code == 200


def test_stored_jobs_per_key_quota(start_app) -> None:
    with start_app(max_key_jobs=2, **KEYS) as client:
        for _ in range(2):
            assert upload(client, csv_bytes(make_frame(5)), path="/v1/jobs").status_code == 202
        limit_refusal(
            upload(client, csv_bytes(make_frame(5)), path="/v1/jobs"), 429, "max_key_jobs"
        )
        other = upload(client, csv_bytes(make_frame(5)), path="/v1/jobs", key=OTHER_KEY)
        assert other.status_code == 202


def test_low_disk_refuses_uploads_with_507(start_app) -> None:
    with start_app(min_free_disk_bytes=2**62) as client:
        limit_refusal(upload(client, csv_bytes(make_frame(5))), 507, "min_free_disk_bytes")
        limit_refusal(
            upload(client, csv_bytes(make_frame(5)), path="/v1/jobs"), 507, "min_free_disk_bytes"
        )


def test_body_streaming_after_the_closing_boundary_is_cut_off(start_app) -> None:
    boundary = "xyzzy"
    part = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + csv_bytes(make_frame(5))
        + f"\r\n--{boundary}--\r\n".encode()
    )

    def body(junk_chunks: int):
        yield part
        for _ in range(junk_chunks):
            yield b"j" * 65536

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    with start_app() as client:
        r = client.post("/v1/score", content=body(64), headers=headers)
        assert r.status_code == 413 and "closing multipart boundary" in r.json()["detail"]
        assert client.post("/v1/score", content=body(0), headers=headers).status_code == 200


def test_csv_replies_escape_formula_keys_by_default(start_app) -> None:
    frame = make_frame(2)
    frame["station_id"] = ["=1+1", "-4"]
    with start_app() as client:
        reply = read_csv_reply(upload(client, csv_bytes(frame)).content)
    assert reply["station_id"].tolist() == ["'=1+1", "-4"]
    with start_app(csv_escape_formulas=False) as client:
        reply = read_csv_reply(upload(client, csv_bytes(frame)).content)
    assert reply["station_id"].tolist() == ["=1+1", "-4"]


def test_docs_are_off_in_production_unless_enabled(start_app) -> None:
    prod = {"environment": "production", **KEYS}
    with start_app(**prod) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert client.get(path).status_code == 404, path
    with start_app(docs_enabled=True, **prod) as client:
        assert client.get("/openapi.json").status_code == 200
    with start_app() as client:  # development
        assert client.get("/openapi.json").status_code == 200
