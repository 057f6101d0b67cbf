"""Limits on the work one request may cause: each refusal names its setting."""

from __future__ import annotations

import gzip
import os
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pytest

from anomalyops_api.errors import ApiError
from anomalyops_api.job_record import JobStatus, owner_of
from anomalyops_api.job_store import JobStore
from anomalyops_api.limits import ScoreLimits, UploadGate, check_free_disk
from anomalyops_api.scoring import (
    InputFormat,
    OutputFormat,
    count_rows_estimate,
    escape_formulas,
    score_file,
)
from anomalyops_api.uploads import SPOOL_PREFIX, sweep_spool
from tests.helpers.api import csv_bytes, make_frame, numpy_model, parquet_bytes, read_csv_reply


def run(tmp_path: Path, data: bytes, fmt: InputFormat, limits: ScoreLimits, **kw):
    src = tmp_path / "input"
    src.write_bytes(data)
    return score_file(
        src,
        fmt,
        numpy_model(),
        tmp_path / "out.csv",
        kw.pop("out", OutputFormat.CSV),
        csv_block_bytes=64 * 1024,
        parquet_batch_rows=500,
        limits=limits,
    )


def refused(tmp_path: Path, data: bytes, fmt: InputFormat, limits: ScoreLimits) -> ApiError:
    with pytest.raises(ApiError) as caught:
        run(tmp_path, data, fmt, limits)
    return caught.value


def test_gzip_bomb_is_cut_off_at_the_decompressed_limit(tmp_path: Path) -> None:
    header = csv_bytes(make_frame(1)).split(b"\n")[0] + b"\n"
    line = csv_bytes(make_frame(1)).split(b"\n")[1] + b"\n"
    bomb = gzip.compress(header + line * 400_000, 9)  # ~30 MB of CSV in ~100 KB
    assert len(bomb) < 1_000_000
    started = time.monotonic()
    error = refused(tmp_path, bomb, InputFormat.CSV_GZIP, ScoreLimits(max_decompressed_bytes=2**20))
    assert time.monotonic() - started < 2
    assert error.status_code == 413
    assert error.extra["limit"] == "max_decompressed_bytes"
    assert "ANOMALYOPS_API_MAX_DECOMPRESSED_BYTES" in error.detail
    assert not (tmp_path / "out.csv").exists() or (tmp_path / "out.csv").stat().st_size < 2**21


@pytest.mark.parametrize("fmt", [InputFormat.CSV, InputFormat.PARQUET])
def test_rows_over_the_limit_are_413(tmp_path: Path, fmt: InputFormat) -> None:
    frame = make_frame(3000)
    data = parquet_bytes(frame) if fmt is InputFormat.PARQUET else csv_bytes(frame)
    error = refused(tmp_path, data, fmt, ScoreLimits(max_rows=1000, rows_setting="max_job_rows"))
    assert error.status_code == 413 and error.extra["limit"] == "max_job_rows"
    assert run(tmp_path, data, fmt, ScoreLimits(max_rows=3000)).rows == 3000


def test_result_over_the_limit_is_413(tmp_path: Path) -> None:
    error = refused(
        tmp_path, csv_bytes(make_frame(5000)), InputFormat.CSV, ScoreLimits(max_result_bytes=10_000)
    )
    assert error.status_code == 413 and error.extra["limit"] == "max_result_bytes"


def test_scoring_past_the_deadline_is_cut_off_with_503(tmp_path: Path) -> None:
    limits = ScoreLimits(deadline=time.monotonic() - 1, max_seconds=0.5)
    error = refused(tmp_path, csv_bytes(make_frame(5000)), InputFormat.CSV, limits)
    assert error.status_code == 503 and error.extra["limit"] == "max_score_seconds"
    assert "POST /v1/jobs" in error.detail


def test_low_disk_is_507(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(ApiError) as caught:
        check_free_disk(tmp_path, min_free=free + 2**30)
    assert caught.value.status_code == 507
    assert caught.value.extra["limit"] == "min_free_disk_bytes"
    check_free_disk(tmp_path, min_free=0, incoming=1)
    with pytest.raises(ApiError):  # while writing results, too
        run(
            tmp_path,
            csv_bytes(make_frame(100)),
            InputFormat.CSV,
            ScoreLimits(min_free_disk_bytes=free + 2**30),
        )


def test_formula_cells_in_keys_are_escaped_numbers_kept() -> None:
    values = pa.array(
        ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(1)", "\tx", "-3.5", "st-1", None]
    )
    assert escape_formulas(values).to_pylist() == [
        "'=cmd|' /C calc'!A0",
        "'+1+1",
        "'-2+3",
        "'@SUM(1)",
        "'\tx",
        "-3.5",
        "st-1",
        None,
    ]


def test_csv_reply_escapes_formula_keys_only_when_enabled(tmp_path: Path) -> None:
    frame = make_frame(3)
    frame["station_id"] = ['=HYPERLINK("http://x")', "st-1", "-7"]
    on = run(tmp_path, csv_bytes(frame), InputFormat.CSV, ScoreLimits(escape_formulas=True))
    assert read_csv_reply(on.output_path.read_bytes())["station_id"].tolist() == [
        '\'=HYPERLINK("http://x")',
        "st-1",
        "-7",
    ]
    off = run(tmp_path, csv_bytes(frame), InputFormat.CSV, ScoreLimits())
    assert read_csv_reply(off.output_path.read_bytes())["station_id"][0].startswith("=")


def test_row_estimate_reads_a_sample_not_the_whole_file(tmp_path: Path) -> None:
    """A job upload's estimate must not cost a full read: a file whose tail is unreadable
    still gets an estimate from its first MiB, close to the truth."""
    frame = make_frame(200_000)
    for fmt, data in [
        (InputFormat.CSV, csv_bytes(frame)),
        (InputFormat.CSV_GZIP, gzip.compress(csv_bytes(frame), 6)),
    ]:
        path = tmp_path / "f"
        path.write_bytes(data[: len(data) // 2] + os.urandom(len(data) // 2))
        estimate = count_rows_estimate(path, fmt)
        assert estimate is not None, fmt
        assert 0.8 * 200_000 < estimate < 1.25 * 200_000, (fmt, estimate)


def test_upload_gate_caps_uploads_and_key_bytes(tmp_path: Path) -> None:
    gate = UploadGate(max_uploads=2, max_key_bytes=100)
    a = gate.enter("k1", tmp_path / "a")
    gate.enter("k2", tmp_path / "b")
    with pytest.raises(ApiError) as caught:
        gate.enter("k3", tmp_path / "c")
    assert caught.value.status_code == 503 and caught.value.headers["Retry-After"]
    assert caught.value.extra["limit"] == "max_concurrent_uploads"
    a.add(60)
    with pytest.raises(ApiError) as caught:
        a.add(41)
    assert caught.value.status_code == 429 and caught.value.extra["limit"] == "max_key_upload_bytes"
    a.finish_upload()
    assert gate.active == 1
    c = gate.enter("k1", tmp_path / "c")  # k1's bytes were released with its upload
    c.add(100)
    assert tmp_path / "a" in gate.live_dirs()
    a.done_with_dir()
    assert tmp_path / "a" not in gate.live_dirs()


def test_sweep_spares_live_upload_dirs_however_old(tmp_path: Path) -> None:
    live, dead = tmp_path / f"{SPOOL_PREFIX}live", tmp_path / f"{SPOOL_PREFIX}dead"
    for path in (live, dead):
        path.mkdir()
        stamp = time.time() - 7200
        os.utime(path, (stamp, stamp))
    assert sweep_spool(tmp_path, max_age_s=3600, live={live}) == 1
    assert live.exists() and not dead.exists()


def test_expired_job_rows_are_purged_after_retention(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs")
    store.open()
    for job_id in ("old", "new"):
        store.create(
            job_id,
            owner=owner_of("k"),
            filename=None,
            input_format=InputFormat.CSV,
            output_format=OutputFormat.CSV,
            input_bytes=1,
        )
        store.claim_next()
        store.succeed(job_id, rows=1, model_version=1, threshold=1.0, ttl_s=10)
    assert store.count_owned(owner_of("k")) == 2
    now = time.time()
    assert sorted(store.expire(now=now + 11)) == ["new", "old"]
    assert store.count_owned(owner_of("k")) == 0
    assert store.purge_expired(retention_s=100, now=now + 50) == 0
    assert store.get("old").status is JobStatus.EXPIRED
    assert store.purge_expired(retention_s=100, now=now + 200) == 2
    assert store.get("old") is None and store.ids() == set()


def test_multi_member_gzip_is_read_whole_and_leaves_no_temp_file(tmp_path: Path) -> None:
    frame = make_frame(3000)
    text = csv_bytes(frame)
    cut = text.index(b"\n", len(text) // 2) + 1
    data = gzip.compress(text[:cut]) + gzip.compress(text[cut:])  # what `cat a.gz b.gz` gives
    assert run(tmp_path, data, InputFormat.CSV_GZIP, ScoreLimits()).rows == 3000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input", "out.csv"]


@pytest.mark.parametrize(
    ("tail", "word"), [(b"", "ends in the middle"), (b"garbage!", "corrupt gzip")]
)
def test_truncated_or_trailing_garbage_gzip_is_400(tmp_path: Path, tail: bytes, word: str) -> None:
    data = gzip.compress(csv_bytes(make_frame(3000)))
    data = data[:-20] if not tail else data + tail
    error = refused(tmp_path, data, InputFormat.CSV_GZIP, ScoreLimits())
    assert error.status_code == 400 and word in error.detail
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input"]


DROPPED_READER_SCRIPT = """
import sys, time
from pathlib import Path
from anomalyops_api.errors import ApiError
from anomalyops_api.limits import ScoreLimits
from anomalyops_api.scoring import InputFormat, OutputFormat, score_file
from tests.helpers.api import csv_bytes, make_frame, numpy_model

tmp = Path(sys.argv[1])
frame = make_frame(3)
frame.loc[1, "station_id"] = "x" * (8 << 20)  # a line longer than a block: error mid-file
src = tmp / "long.csv"
src.write_bytes(csv_bytes(frame))
for _ in range(int(sys.argv[2])):
    try:
        score_file(src, InputFormat.CSV, numpy_model(), tmp / "out.csv", OutputFormat.CSV,
                   csv_block_bytes=64 * 1024, limits=ScoreLimits())
    except ApiError as exc:
        assert exc.status_code == 400, exc.detail
print("ok")
"""


def test_a_reader_dropped_mid_file_does_not_deadlock(tmp_path: Path) -> None:
    """Regression: pyarrow reading a Python file object on its readahead thread, dropped mid-
    file by an error, deadlocked on the GIL and froze the whole API process. A deadlock cannot
    be caught in-process, so the scenario runs in a child with a deadline."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", DROPPED_READER_SCRIPT, str(tmp_path), "30"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[3],
    )
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]
