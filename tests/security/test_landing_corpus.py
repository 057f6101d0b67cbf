"""Hostile and broken files dropped in ``landing/<date>/``, generated here.

Each case asserts the documented outcome (the day is quarantined with a reason naming the file
and the rule or limit; nothing reaches raw/), that it was decided within 5 s, and that nothing
was written outside the day's quarantine folder (and, for refused files, nothing was copied).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from anomalyops.ingest import ingest, land
from anomalyops.lake import Lake, Zone
from anomalyops.sources.landing import IngestError

DAY = "2026-11-05"
HEADER = (
    "station_id,timestamp,inlet_pressure,outlet_pressure,inlet_temperature,outlet_temperature,"
    "motor_current,vibration,shaft_speed,flow_rate\n"
)
ROW = "s1,2026-11-05T{h:02d}:{m:02d}:00Z,8,40,15,90,200,10,6000,2500\n"
COLUMNS = HEADER.strip().split(",")


def rows(n: int) -> str:
    return "".join(ROW.format(h=(i // 60) % 24, m=i % 60) for i in range(n))


@pytest.fixture
def landing(settings_env, monkeypatch, tmp_path):
    """(settings factory, landing folder of DAY) with the landing source and a clean tree."""
    monkeypatch.setenv("ANOMALYOPS_SOURCE", "landing")
    folder = tmp_path / "lake" / "landing" / DAY
    folder.mkdir(parents=True)
    return settings_env, folder


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()}


def rejected(settings_env, folder: Path, *, copied: set[str]) -> tuple[str, dict]:
    """Run ingest expecting a rejection; check quarantine, raw, time and containment."""
    lake_root = folder.parents[1]
    before = tree(lake_root.parent)
    settings_env.cache_clear()  # a test may have changed a limit since the last call
    t0 = time.monotonic()
    with pytest.raises(IngestError) as err:
        ingest(DAY, settings_env())
    elapsed = time.monotonic() - t0
    assert elapsed < 5, f"took {elapsed:.1f} s"
    lake = Lake(str(lake_root))
    assert not lake.exists(Zone.RAW, DAY) and not (lake_root / "raw").exists()
    reason = json.loads(lake.read_file(Zone.QUARANTINE, DAY, "reason.json"))
    assert reason["stage"] == "ingest" and reason["problems"] == err.value.problems
    quarantined = lake_root / "quarantine" / f"ds={DAY}"
    assert {p.name for p in quarantined.iterdir()} == {"reason.json", "_SUCCESS", *copied}
    new = tree(lake_root.parent) - before
    # The lake's per-date lock file (lake.py) is the one other thing a write may leave.
    allowed = (f"lake/quarantine/ds={DAY}/", f"lake/_locks/ds={DAY}.lock")
    assert all(p.startswith(allowed) for p in new), new
    assert not (lake_root / "quarantine" / "_tmp").exists() or not any(
        (lake_root / "quarantine" / "_tmp").iterdir()
    )
    return str(err.value), reason


# -- Parquet -----------------------------------------------------------------------------------


def test_struct_column_is_refused_by_name(landing):
    settings_env, folder = landing
    table = pa.table(
        {c: pa.array(["s1"] if c == "station_id" else ["2026-11-05"]) for c in COLUMNS[:2]}
        | {c: pa.array([1.0]) for c in COLUMNS[2:]}
    )
    table = table.set_column(
        COLUMNS.index("vibration"),
        "vibration",
        pa.array([{"x": 1.0, "y": {"z": [1, 2]}}]),
    )
    pq.write_table(table, folder / "nested.parquet")
    message, _ = rejected(settings_env, folder, copied={"nested.parquet"})
    assert f"landing/{DAY}/nested.parquet: column(s) 'vibration' (struct<" in message
    assert "nested" in message


def test_corrupt_and_truncated_parquet_are_named_errors(landing):
    settings_env, folder = landing
    (folder / "garbage.parquet").write_bytes(b"PAR1" + os.urandom(4096) + b"PAR1")
    buf = io.BytesIO()
    pq.write_table(pa.table({c: pa.array(["1"] * 100) for c in COLUMNS}), buf)
    (folder / "truncated.parquet").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    message, _ = rejected(settings_env, folder, copied={"garbage.parquet", "truncated.parquet"})
    assert f"landing/{DAY}/garbage.parquet: cannot read as parquet" in message
    assert f"landing/{DAY}/truncated.parquet: cannot read as parquet" in message


def test_parquet_over_the_row_limit_is_refused_from_its_footer(landing, monkeypatch):
    settings_env, folder = landing
    monkeypatch.setenv("ANOMALYOPS_INGEST__MAX_ROWS", "1000")
    n = 200_000  # one huge row group
    table = pa.table({c: pa.array(["s1"] * n) for c in COLUMNS[:2]})
    for c in COLUMNS[2:]:
        table = table.append_column(c, pa.array([0.0] * n))
    pq.write_table(table, folder / "big.parquet", row_group_size=n)
    message, _ = rejected(settings_env, folder, copied={"big.parquet"})
    assert f"landing/{DAY}/big.parquet: refused: 200,000 rows exceeds" in message
    assert "ANOMALYOPS_INGEST__MAX_ROWS = 1,000" in message


def test_parquet_bomb_over_the_decompressed_limit_is_refused(landing, monkeypatch):
    settings_env, folder = landing
    monkeypatch.setenv("ANOMALYOPS_INGEST__MAX_DECOMPRESSED_BYTES", str(4 * 1024**2))
    n = 1_000_000
    table = pa.table({c: pa.array(["s1"] * n) for c in COLUMNS[:2]})
    for c in COLUMNS[2:]:
        table = table.append_column(c, pa.array([0.0] * n))
    pq.write_table(table, folder / "bomb.parquet", row_group_size=n)
    assert (folder / "bomb.parquet").stat().st_size < 1024**2  # small on disk
    message, _ = rejected(settings_env, folder, copied={"bomb.parquet"})
    assert f"landing/{DAY}/bomb.parquet: refused: " in message
    assert "ANOMALYOPS_INGEST__MAX_DECOMPRESSED_BYTES = 4,194,304" in message


# -- CSV ---------------------------------------------------------------------------------------


def test_gzip_bomb_stops_at_the_decompressed_limit(landing, monkeypatch):
    settings_env, folder = landing
    monkeypatch.setenv("ANOMALYOPS_INGEST__MAX_DECOMPRESSED_BYTES", str(16 * 1024**2))
    # One valid row repeated: 1 GiB expanded from ~3 MB, written member by member (gzip
    # concatenates members), so neither the test nor the file ever holds the expansion.
    row = ROW.format(h=0, m=0).encode()
    chunk = row * (8 * 1024**2 // len(row))
    block = gzip.compress(chunk, compresslevel=9)
    with open(folder / "bomb.csv.gz", "wb") as f:
        f.write(gzip.compress(HEADER.encode()))
        for _ in range(1024**3 // len(chunk)):
            f.write(block)
    assert (folder / "bomb.csv.gz").stat().st_size < 4 * 1024**2
    message, _ = rejected(settings_env, folder, copied={"bomb.csv.gz"})
    assert f"landing/{DAY}/bomb.csv.gz: refused: more than 16,777,216 bytes" in message
    assert "ANOMALYOPS_INGEST__MAX_DECOMPRESSED_BYTES" in message


def test_corrupt_gzip_is_a_named_error(landing):
    settings_env, folder = landing
    (folder / "day.csv.gz").write_bytes(gzip.compress((HEADER + rows(500)).encode())[:-100])
    (folder / "notgz.csv.gz").write_bytes(b"this is not gzip at all\n")
    message, _ = rejected(settings_env, folder, copied={"day.csv.gz", "notgz.csv.gz"})
    assert f"landing/{DAY}/day.csv.gz: not a valid gzip file" in message
    assert f"landing/{DAY}/notgz.csv.gz: not a valid gzip file" in message


def test_a_50_mb_line_is_reported_without_quoting_it(landing):
    settings_env, folder = landing
    huge = "9" * 50_000_000 + "x"
    (folder / "long.csv").write_text(
        HEADER + rows(2) + f"s1,2026-11-05T05:00:00Z,8,40,15,90,200,{huge},6000,2500\n"
    )
    message, reason = rejected(settings_env, folder, copied={"long.csv"})
    assert f"landing/{DAY}/long.csv: column 'vibration': not a number at row 3 (line 4)" in message
    assert "(50,000,003 characters)" in message
    assert len(message) < 1000 and len(json.dumps(reason)) < 2000


def test_nul_bytes_are_refused_with_their_line(landing):
    settings_env, folder = landing
    (folder / "nul.csv").write_bytes((HEADER + rows(2)).encode() + b"s1\x00evil,2026-11-05\n")
    message, _ = rejected(settings_env, folder, copied={"nul.csv"})
    assert f"landing/{DAY}/nul.csv: NUL byte at line 4" in message


def test_utf16_with_bom_is_refused_and_utf8_bom_accepted(landing):
    settings_env, folder = landing
    (folder / "utf16.csv").write_bytes((HEADER + rows(2)).encode("utf-16"))
    message, _ = rejected(settings_env, folder, copied={"utf16.csv"})
    assert f"landing/{DAY}/utf16.csv: not UTF-8 text: it starts with a UTF-16 byte-order mark" in (
        message
    )
    (folder / "utf16.csv").unlink()
    (folder / "bom.csv").write_bytes(b"\xef\xbb\xbf" + (HEADER + rows(3)).encode())
    assert ingest(DAY, settings_env()).rows == 3


def test_csv_over_the_row_and_size_limits(landing, monkeypatch):
    settings_env, folder = landing
    monkeypatch.setenv("ANOMALYOPS_INGEST__MAX_ROWS", "100")
    (folder / "many.csv").write_text(HEADER + rows(500))
    message, _ = rejected(settings_env, folder, copied={"many.csv"})
    assert f"landing/{DAY}/many.csv: refused: more than 100 rows exceeds" in message
    monkeypatch.setenv("ANOMALYOPS_INGEST__MAX_ROWS", "1000")
    monkeypatch.setenv("ANOMALYOPS_INGEST__MAX_FILE_BYTES", "10000")
    message, reason = rejected(settings_env, folder, copied=set())  # too big to copy either
    assert f"landing/{DAY}/many.csv: refused: {(folder / 'many.csv').stat().st_size:,} bytes" in (
        message
    )
    assert "ANOMALYOPS_INGEST__MAX_FILE_BYTES = 10,000" in message
    assert reason["not_copied"] == ["many.csv"]


def test_too_many_files_in_a_day(landing, monkeypatch):
    settings_env, folder = landing
    monkeypatch.setenv("ANOMALYOPS_INGEST__MAX_FILES", "3")
    for i in range(5):
        (folder / f"part{i}.csv").write_text(HEADER + rows(1))
    message, reason = rejected(settings_env, folder, copied=set())
    assert f"landing/{DAY}/: refused: 5 files exceeds the limit" in message
    assert "ANOMALYOPS_INGEST__MAX_FILES = 3" in message
    assert len(reason["not_copied"]) == 5


# -- not regular files -------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/proc/self/environ", "secret"])
def test_symlink_is_refused_never_read_copied_or_quoted(landing, tmp_path, target):
    settings_env, folder = landing
    secret = tmp_path / "secret"
    secret.write_text(HEADER + "s1,2026-11-05T00:00:00Z,8,40,15,90,200,10,6000,SECRET-TOKEN-42\n")
    os.symlink(secret if target == "secret" else target, folder / "day.csv")
    (folder / "ok.csv").write_text(HEADER + rows(2))
    message, reason = rejected(settings_env, folder, copied={"ok.csv"})
    assert message == (
        f"landing/{DAY}/day.csv: refused: a symbolic link; landing accepts regular files only "
        "(it was not read)"
    )
    assert reason["not_copied"] == ["day.csv"]
    quarantined = Path(settings_env().lake_root) / "quarantine" / f"ds={DAY}"
    blob = b"".join(p.read_bytes() for p in quarantined.iterdir())
    assert b"SECRET-TOKEN-42" not in blob and b"PATH=" not in blob and b"HOME=" not in blob
    assert str(target).encode() not in blob
    # The failure alert quotes the error and the quarantine reason: neither holds the content.
    from anomalyops.alerts import render_failure_email
    from anomalyops_airflow.alerting import _quarantine_reason

    msg = render_failure_email(
        settings_env(),
        dag_id="anomalyops_ingest",
        task_id="ingest",
        run_id="r",
        logical_date=DAY,
        try_number=1,
        error=f"AirflowFailException: ingest rejected {DAY}: {message}",
        log_url=None,
        log_path=None,
        quarantine=_quarantine_reason(settings_env(), DAY),
    )
    email = "".join(
        part.get_payload(decode=True).decode() for part in msg.walk() if not part.is_multipart()
    )
    assert "day.csv: refused: a symbolic link" in email
    assert "SECRET-TOKEN-42" not in email and "PATH=" not in email


def test_symlinked_day_folder_is_refused_and_nothing_in_it_read(landing, tmp_path):
    settings_env, folder = landing
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "day.csv").write_text(
        HEADER + "s1,2026-11-05T00:00:00Z,8,40,15,90,200,10,6000,SECRET-TOKEN-42\n"
    )
    folder.rmdir()
    folder.symlink_to(elsewhere)
    message, reason = rejected(settings_env, folder, copied=set())
    assert message == (
        f"landing/{DAY}/: refused: the day's folder is a symbolic link; landing accepts files "
        "in a real folder only (nothing was read)"
    )
    assert reason["not_copied"] == ["day.csv"] and "SECRET" not in json.dumps(reason)


def test_fifo_is_refused_without_blocking(landing):
    settings_env, folder = landing
    os.mkfifo(folder / "pipe.csv")
    outcome: list = []

    def run():
        try:
            ingest(DAY, settings_env())
        except IngestError as exc:
            outcome.append(str(exc))

    worker = threading.Thread(target=run, daemon=True)  # a blocked open() cannot be joined
    t0 = time.monotonic()
    worker.start()
    worker.join(timeout=5)
    if worker.is_alive():  # unblock it so the test process can exit
        os.close(os.open(folder / "pipe.csv", os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("ingest blocked on a FIFO")
    assert time.monotonic() - t0 < 5
    assert outcome == [
        f"landing/{DAY}/pipe.csv: refused: a FIFO (named pipe); landing accepts regular files "
        "only (it was not read)"
    ]
    reason = json.loads(
        Lake(settings_env().lake_root).read_file(Zone.QUARANTINE, DAY, "reason.json")
    )
    assert reason["not_copied"] == ["pipe.csv"]


def test_directory_named_like_a_file_is_refused(landing):
    settings_env, folder = landing
    (folder / "sub.csv").mkdir()
    (folder / "sub.csv" / "inner.csv").write_text(HEADER + rows(1))
    message, _ = rejected(settings_env, folder, copied=set())
    assert f"landing/{DAY}/sub.csv: refused: a directory" in message


# -- path-like dates ---------------------------------------------------------------------------

BAD_DATES = [
    "../../etc",
    "..",
    "/etc/passwd",
    "2026-11-05/../../etc",
    "2026-11-05/..",
    "2026-11-05\x00",
    "2026-11-05 ",
    "2026-11-5",
    "2026-13-01",
    "",
]


@pytest.mark.parametrize("ds", BAD_DATES)
def test_path_like_dates_are_refused_everywhere(settings_env, monkeypatch, tmp_path, ds):
    monkeypatch.setenv("ANOMALYOPS_SOURCE", "landing")
    s = settings_env()
    lake = Lake(s.lake_root)
    before = tree(tmp_path)
    calls = [
        lambda: ingest(ds, s),
        lambda: land(ds, s),
        lambda: lake.landing_path(ds),
        lambda: lake.partition_path(Zone.RAW, ds),
        lambda: lake.exists(Zone.RAW, ds),
        lambda: lake.read_table(Zone.RAW, ds),
        lambda: lake.read_meta(Zone.RAW, ds),
        lambda: lake.read_file(Zone.QUARANTINE, ds, "reason.json"),
        lambda: lake.write_files(Zone.QUARANTINE, ds, {"x": b"1"}),
        lambda: lake.remove(Zone.RAW, ds, reason="test"),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="not a date in YYYY-MM-DD form"):
            call()
    assert tree(tmp_path) == before, "nothing may be written for a refused date"
