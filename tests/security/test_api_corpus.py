"""Hostile and broken uploads against the real uvicorn app: each gets its documented answer
within 5 s, the server's RSS grows by less than 200 MiB, and the server stays healthy.

The corpus is generated here (nothing read from outside the test). Limits are scaled down
from the defaults so that reaching them takes well under 5 s on 2 cores; the time to reach a
limit grows with its value (~1.5 M rows/s), see docs/security.md.
"""

from __future__ import annotations

import gzip
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers.api import (
    ADMIN_KEY,
    KEY,
    UvicornProcess,
    csv_bytes,
    make_frame,
    parquet_bytes,
    publish,
    read_csv_reply,
)

MiB = 1024 * 1024
MAX_SECONDS = 5.0
MAX_RSS_GROWTH = 200 * MiB
LIMITS = {
    "ANOMALYOPS_API_MAX_DECOMPRESSED_BYTES": 64 * MiB,
    "ANOMALYOPS_API_MAX_JOB_DECOMPRESSED_BYTES": 64 * MiB,
    "ANOMALYOPS_API_MAX_ROWS": 1_000_000,
    "ANOMALYOPS_API_MAX_JOB_ROWS": 1_000_000,
    "ANOMALYOPS_API_MAX_CONCURRENT_UPLOADS": 2,
    "ANOMALYOPS_API_MAX_SCORE_SECONDS": 4,
}
H = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UvicornProcess]:
    root = tmp_path_factory.mktemp("corpus")
    proc = UvicornProcess(
        {
            "ANOMALYOPS_API_ENVIRONMENT": "production",
            "ANOMALYOPS_API_MODEL_DIR": str(root / "serving"),
            "ANOMALYOPS_API_STATE_DIR": str(root / "state"),
            "ANOMALYOPS_API_SPOOL_DIR": str(root),
            "ANOMALYOPS_API_KEYS": KEY,
            "ANOMALYOPS_API_ADMIN_KEY": ADMIN_KEY,
            **{k: str(v) for k, v in LIMITS.items()},
        },
        root / "uvicorn.log",
    )
    try:
        publish(root / "serving", 3)
        proc.wait_ready()
        with httpx.Client(base_url=proc.url, timeout=60) as client:
            assert_healthy(client)  # warm up: first scoring allocations are not growth
        yield proc
    finally:
        proc.stop()
    assert "Traceback" not in proc.log(), proc.log()[-5000:]


def rss(proc: UvicornProcess) -> int:
    with open(f"/proc/{proc.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def assert_healthy(client: httpx.Client) -> None:
    assert client.get("/readyz").status_code == 200
    frame = make_frame(50)
    r = client.post("/v1/score", files={"file": ("d.csv", csv_bytes(frame), "text/csv")}, headers=H)
    assert r.status_code == 200, r.text
    assert len(read_csv_reply(r.content)) == 50


# -- the corpus ------------------------------------------------------------------------------


def gzip_bomb(expanded: int) -> bytes:
    """Concatenated gzip members (valid gzip): ~1 KB each, 1 MiB of CSV rows each."""
    text = csv_bytes(make_frame(2))
    header, row = text.split(b"\n")[0] + b"\n", text.split(b"\n")[1] + b"\n"
    member = gzip.compress(row * (MiB // len(row)), 9)
    return gzip.compress(header, 9) + member * (expanded // MiB)


def parquet_huge_row_group() -> bytes:
    """20 M rows in one row group, a few KB on disk (constant columns compress to nothing)."""
    n = 20_000_000
    frame = make_frame(1)
    columns = {}
    for name in frame.columns:
        value = frame[name].iloc[0]
        if isinstance(value, str):
            columns[name] = pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n, dtype=np.int32)), pa.array([value])
            )
        else:
            columns[name] = pa.array(np.full(n, value))
    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf, row_group_size=n)
    return buf.getvalue()


def parquet_with(column: str, values: pa.Array) -> bytes:
    table = pa.Table.from_pandas(make_frame(len(values)), preserve_index=False)
    table = table.set_column(table.schema.get_field_index(column), column, values)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def csv_with_long_line(size: int) -> bytes:
    frame = make_frame(3)
    frame.loc[1, "station_id"] = "x" * size
    return csv_bytes(frame)


def csv_with_nul() -> bytes:
    text = csv_bytes(make_frame(5)).decode()
    lines = text.splitlines()
    cells = lines[3].split(",")
    cells[3] = "1\x00\x00.5"  # a feature cell
    lines[3] = ",".join(cells)
    return ("\n".join(lines) + "\n").encode()


def utf16_with_bom() -> bytes:
    return csv_bytes(make_frame(5)).decode().encode("utf-16")  # BOM FF FE, then UTF-16LE


@dataclass
class Case:
    name: str
    make: Callable[[], bytes]
    filename: str
    content_type: str
    sync: tuple[int, str]
    """Status and a word the error's detail (or ``limit``) must contain for POST /v1/score."""
    job: tuple[int, str] | None
    """Same for a job: status at submission, or the failed job's ``error_status``."""


GZ, PQ, CSV = "application/gzip", "application/vnd.apache.parquet", "text/csv"
CASES = [
    Case("gzip-bomb-1GiB", lambda: gzip_bomb(1024 * MiB), "b.csv.gz", GZ,
         (413, "max_decompressed_bytes"), (413, "max_job_decompressed_bytes")),
    Case("parquet-20M-rows-one-row-group", parquet_huge_row_group, "h.parquet", PQ,
         (413, "max_rows"), (413, "max_job_rows")),
    Case("parquet-struct-key", lambda: parquet_with("station_id", pa.array([{"a": 1}] * 20)),
         "s.parquet", PQ, (422, "station_id"), (422, "station_id")),
    Case("parquet-list-feature", lambda: parquet_with("vibration", pa.array([[1.0, 2.0]] * 20)),
         "l.parquet", PQ, (422, "vibration"), (422, "vibration")),
    Case("csv-50MB-line", lambda: csv_with_long_line(50 * MiB), "l.csv", CSV,
         (400, "malformed CSV"), (400, "malformed CSV")),
    Case("csv-50MB-header", lambda: b"a" * (50 * MiB) + b"\n1\n", "h.csv", CSV,
         (400, "no line break"), (400, "no line break")),
    Case("csv-nul-bytes", csv_with_nul, "n.csv", CSV, (422, "cannot parse"), (422, "cannot parse")),
    Case("utf16-with-bom", utf16_with_bom, "u.csv", CSV, (400, "UTF-8"), (400, "UTF-8")),
    Case("binary-garbage", lambda: np.random.default_rng(0).bytes(MiB), "g.csv", CSV,
         (400, "UTF-8"), (400, "UTF-8")),
]  # fmt: skip


def error_text(body: dict) -> str:
    return f"{body.get('detail', '')} {body.get('limit', '')}"


def wait_failed(client: httpx.Client, job_id: str, deadline: float) -> dict:
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=H).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['status']} after {MAX_SECONDS} s")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_upload_gets_its_documented_answer(server: UvicornProcess, case: Case) -> None:
    data = case.make()
    files = {"file": (case.filename, data, case.content_type)}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        before = rss(server)
        started = time.monotonic()
        r = client.post("/v1/score", files=files, headers=H)
        sync_s = time.monotonic() - started
        assert sync_s < MAX_SECONDS, f"{case.name}: too slow"
        status, word = case.sync
        assert r.status_code == status, r.text[:500]
        assert word in error_text(r.json()), r.json()

        if case.job is not None:
            started = time.monotonic()
            r = client.post("/v1/jobs", files=files, headers=H)
            status, word = case.job
            if r.status_code == 202:  # the header was fine: the job itself fails
                job = wait_failed(client, r.json()["id"], started + MAX_SECONDS)
                assert job["status"] == "failed" and job["error_status"] == status, job
                assert word in error_text(job["error"]), job
            else:
                assert r.status_code == status, r.text[:500]
                assert word in error_text(r.json()), r.json()
            assert time.monotonic() - started < MAX_SECONDS, f"{case.name}: job too slow"
        growth = rss(server) - before
        print(f"{case.name}: {len(data)} bytes, score {sync_s:.2f} s, RSS +{growth / MiB:.0f} MiB")
        assert growth < MAX_RSS_GROWTH
        assert_healthy(client)


def test_formula_cells_are_escaped_in_csv_replies(server: UvicornProcess) -> None:
    frame = make_frame(4)
    frame["station_id"] = ['=cmd|" /C calc"!A0', "+SUM(A1)", "@x", "-12.5"]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        r = client.post("/v1/score", files={"file": ("f.csv", csv_bytes(frame), CSV)}, headers=H)
        assert r.status_code == 200
        keys = read_csv_reply(r.content)["station_id"].tolist()
        assert keys == ["'" + frame["station_id"][0], "'+SUM(A1)", "'@x", "-12.5"]
        body = client.post(
            "/v1/score?format=json", files={"file": ("f.csv", csv_bytes(frame), CSV)}, headers=H
        ).json()  # JSON carries the values as they are: no spreadsheet reads it
        assert body["results"][0]["station_id"] == frame["station_id"][0]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/jobs/../../etc/passwd",
        "/v1/jobs/..%2F..%2Fetc%2Fpasswd",
        "/v1/jobs/%2e%2e%2f%2e%2e%2fetc%2fpasswd/result",
        "/v1/jobs/..%252F..%252Fetc%252Fpasswd",
        "/v1/jobs/" + "0" * 31 + "%00",
        "/v1/jobs/" + "a" * 32 + "/../../../../etc/passwd",
    ],
)
def test_path_like_job_ids_get_nothing_but_a_4xx(server: UvicornProcess, path: str) -> None:
    raw = httpx.URL(server.url).copy_with(raw_path=path.encode())
    with httpx.Client(timeout=10) as client:
        for method in ("GET", "DELETE"):
            r = client.request(method, raw, headers=H)
            assert r.status_code in (404, 405, 422), (path, r.status_code, r.text)
            assert "root:" not in r.text
        assert_healthy(httpx.Client(base_url=server.url, timeout=60))


def test_uploads_over_the_concurrency_cap_get_503_with_retry_after(server: UvicornProcess) -> None:
    """Two uploads trickling in hold both slots; a third is refused at once, naming the
    limit; when they finish, uploads are accepted again and the trickled ones score."""
    boundary = "trickle"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="t.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    rows = csv_bytes(make_frame(200))
    headers = {**H, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    started = threading.Barrier(3)
    results: list[int] = []

    def slow_body() -> Iterator[bytes]:
        yield head + rows[:100]
        started.wait()
        for i in range(100, len(rows), len(rows) // 10):
            time.sleep(0.2)
            yield rows[i : i + len(rows) // 10]
        yield f"\r\n--{boundary}--\r\n".encode()

    def slow_upload() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            results.append(
                client.post("/v1/score", content=slow_body(), headers=headers).status_code
            )

    threads = [threading.Thread(target=slow_upload) for _ in range(2)]
    for thread in threads:
        thread.start()
    started.wait()
    time.sleep(0.3)  # both requests are in the server, receiving
    with httpx.Client(base_url=server.url, timeout=60) as client:
        r = client.post("/v1/score", files={"file": ("d.csv", rows, CSV)}, headers=H)
        assert r.status_code == 503 and r.headers["Retry-After"]
        assert r.json()["limit"] == "max_concurrent_uploads"
        for thread in threads:
            thread.join()
        assert results == [200, 200]
        assert_healthy(client)


def test_a_stalled_upload_is_cut_off_with_408(server: UvicornProcess) -> None:
    """A client that sends headers and a little body, then nothing (slowloris), is answered
    408 naming max_score_seconds instead of holding an upload slot for ever."""
    url = httpx.URL(server.url)
    body_start = b"station_id,timestamp\n"
    request = (
        "POST /v1/score HTTP/1.1\r\n"
        f"Host: {url.host}\r\nX-API-Key: {KEY}\r\nContent-Type: text/csv\r\n"
        "Content-Length: 100000000\r\n\r\n"
    ).encode() + body_start
    with socket.create_connection((url.host, url.port), timeout=15) as sock:
        started = time.monotonic()
        sock.sendall(request)
        reply = sock.recv(65536)
        waited = time.monotonic() - started
        while b"max_score_seconds" not in reply and (chunk := sock.recv(65536)):
            reply += chunk  # the body may come in a second segment
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b"max_score_seconds" in reply
    assert LIMITS["ANOMALYOPS_API_MAX_SCORE_SECONDS"] - 0.5 < waited < MAX_SECONDS + 2
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert_healthy(client)


def test_a_normal_parquet_still_scores_after_the_corpus(server: UvicornProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        r = client.post(
            "/v1/score", files={"file": ("d.parquet", parquet_bytes(make_frame(30)), PQ)}, headers=H
        )
        assert r.status_code == 200 and len(read_csv_reply(r.content)) == 30
