import datetime as dt

import pandas as pd
import pytest

from anomalyops.lake import Lake, PartitionNotFound, Zone, as_date


@pytest.fixture(params=["local", "memory"])
def lake(request, tmp_path):
    if request.param == "local":
        return Lake(str(tmp_path / "lake"))
    import uuid

    return Lake(f"memory://lake-{uuid.uuid4().hex}")


def df(n=3, v=1.0):
    return pd.DataFrame({"x": [v] * n})


def test_partition_paths(tmp_path):
    lake = Lake(str(tmp_path))
    assert lake.partition_path(Zone.RAW, "2026-11-05").endswith("/raw/ds=2026-11-05")
    assert lake.partition_path("validated", dt.date(2026, 1, 2)).endswith(
        "/validated/ds=2026-01-02"
    )
    assert lake.landing_path("2026-11-05").endswith("/landing/2026-11-05")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        as_date("05/11/2026")
    with pytest.raises(ValueError):
        Zone("bronze")


def test_write_read_roundtrip_and_listing(lake):
    lake.write_table(Zone.RAW, "2026-11-05", df(), meta={"source": "t"})
    lake.write_table(Zone.RAW, "2026-11-04", df())
    assert lake.exists(Zone.RAW, "2026-11-05")
    assert lake.partitions(Zone.RAW) == [dt.date(2026, 11, 4), dt.date(2026, 11, 5)]
    assert lake.read_table(Zone.RAW, "2026-11-05").equals(df())
    meta = lake.read_meta(Zone.RAW, "2026-11-05")
    assert meta["rows"] == 3 and meta["source"] == "t" and meta["ds"] == "2026-11-05"
    with pytest.raises(PartitionNotFound):
        lake.read_table(Zone.VALIDATED, "2026-11-05")


def test_rewrite_replaces_never_duplicates(lake):
    lake.write_table(Zone.RAW, "2026-11-05", df(3, 1.0))
    lake.write_table(Zone.RAW, "2026-11-05", df(5, 2.0))
    files = lake.fs.ls(lake.partition_path(Zone.RAW, "2026-11-05"), detail=False)
    assert sorted(f.rsplit("/", 1)[-1] for f in files) == ["_SUCCESS", "part-00000.parquet"]
    assert lake.read_table(Zone.RAW, "2026-11-05")["x"].tolist() == [2.0] * 5
    leftovers = lake.fs.ls(f"{lake.zone_path(Zone.RAW)}/_tmp", detail=False)
    assert leftovers == []


def test_failed_write_leaves_the_old_partition_whole(lake):
    lake.write_table(Zone.RAW, "2026-11-05", df(3, 1.0))
    with pytest.raises(RuntimeError), lake.transaction(Zone.RAW, "2026-11-05") as tmp:
        lake._put(f"{tmp}/part-00000.parquet", b"half")
        raise RuntimeError("crash mid-write")
    assert lake.read_table(Zone.RAW, "2026-11-05")["x"].tolist() == [1.0] * 3
    assert lake.fs.ls(f"{lake.zone_path(Zone.RAW)}/_tmp", detail=False) == []


def test_incomplete_partition_is_invisible(lake):
    path = lake.partition_path(Zone.RAW, "2026-11-05")
    lake.fs.makedirs(path, exist_ok=True)
    lake._put(f"{path}/part-00000.parquet", b"partial")
    assert not lake.exists(Zone.RAW, "2026-11-05")
    assert lake.partitions(Zone.RAW) == []


def test_move_and_copy_between_zones(lake):
    lake.write_table(Zone.RAW, "2026-11-05", df())
    lake.copy("2026-11-05", Zone.RAW, Zone.VALIDATED)
    assert lake.exists(Zone.RAW, "2026-11-05") and lake.exists(Zone.VALIDATED, "2026-11-05")
    lake.move("2026-11-05", Zone.RAW, Zone.QUARANTINE, files={"reason.json": b"{}"})
    assert not lake.exists(Zone.RAW, "2026-11-05")
    assert lake.read_file(Zone.QUARANTINE, "2026-11-05", "reason.json") == b"{}"
    assert lake.read_meta(Zone.QUARANTINE, "2026-11-05")["moved_from"] == "raw"
    with pytest.raises(PartitionNotFound):
        lake.move("2026-11-05", Zone.RAW, Zone.QUARANTINE)


# -- recoverable publish and the per-date lock (issue #11) -------------------------------------
import errno  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

from fsspec.implementations.memory import MemoryFileSystem  # noqa: E402

from anomalyops.lake_lock import PartitionLocked  # noqa: E402
from anomalyops.settings import LakeLockSettings  # noqa: E402

DAY = "2026-11-05"


class FlakyMemoryFS(MemoryFileSystem):
    """memory:// (same store) whose per-file copy fails after ``copies_left`` files, the way
    an object store connection drops mid-publish; optionally slow, to force interleaving."""

    cachable = False  # never hand this instance to another Lake

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.copies_left: int | None = None
        self.copy_delay_s = 0.0

    def cp_file(self, path1, path2, **kwargs):
        if self.copies_left is not None:
            if self.copies_left <= 0:
                raise OSError(errno.ECONNRESET, "injected: connection reset mid-copy")
            self.copies_left -= 1
        time.sleep(self.copy_delay_s)
        return super().cp_file(path1, path2, **kwargs)


def flaky_lake() -> Lake:
    lake = Lake(f"memory://lake-{uuid.uuid4().hex}")
    lake.fs = FlakyMemoryFS()
    return lake


def test_a_copy_failing_after_the_old_partition_is_gone_loses_nothing(caplog):
    lake = flaky_lake()
    lake.write_table(Zone.RAW, DAY, df(3, 1.0))
    lake.fs.copies_left = 1  # the parquet file copies, then the connection drops
    with caplog.at_level(logging.ERROR), pytest.raises(OSError, match="mid-copy"):
        lake.write_table(Zone.RAW, DAY, df(5, 2.0))
    assert "was cut short; the complete new copy is kept" in caplog.text
    journal = f"{lake.zone_path(Zone.RAW)}/_tmp/ds={DAY}.publish.json"
    assert lake.fs.exists(journal)
    kept = json.loads(lake.fs.cat(journal))["tmp"]
    assert lake.fs.exists(f"{kept}/_SUCCESS") and lake.fs.exists(f"{kept}/part-00000.parquet")
    # Another process (a fresh Lake on the same store) reading the day finishes the publish.
    reader = Lake(lake.url)
    assert reader.exists(Zone.RAW, DAY)
    assert reader.read_table(Zone.RAW, DAY)["x"].tolist() == [2.0] * 5
    assert reader.read_meta(Zone.RAW, DAY)["rows"] == 5
    assert reader.fs.ls(f"{lake.zone_path(Zone.RAW)}/_tmp", detail=False) == []


def test_an_interrupted_publish_is_finished_by_listing_or_by_the_next_write():
    lake = flaky_lake()
    lake.write_table(Zone.RAW, DAY, df(3, 1.0))
    lake.fs.copies_left = 0
    with pytest.raises(OSError):
        lake.write_table(Zone.RAW, DAY, df(4, 2.0))
    assert Lake(lake.url).partitions(Zone.RAW) == [dt.date(2026, 11, 5)]
    lake.fs.copies_left = 0
    with pytest.raises(OSError):
        lake.write_table(Zone.RAW, DAY, df(6, 3.0))
    lake.fs.copies_left = None
    lake.write_table(Zone.RAW, DAY, df(7, 4.0))  # finishes the pending one, then replaces it
    assert lake.read_table(Zone.RAW, DAY)["x"].tolist() == [4.0] * 7
    assert lake.fs.ls(f"{lake.zone_path(Zone.RAW)}/_tmp", detail=False) == []


def test_removing_a_partition_also_drops_its_pending_publish():
    lake = flaky_lake()
    lake.write_table(Zone.VALIDATED, DAY, df(3, 1.0))
    lake.fs.copies_left = 0
    with pytest.raises(OSError):
        lake.write_table(Zone.VALIDATED, DAY, df(4, 2.0))
    assert lake.remove(Zone.VALIDATED, DAY, reason="test")
    assert not Lake(lake.url).exists(Zone.VALIDATED, DAY)  # not resurrected by recovery


def test_local_publish_killed_between_the_two_renames_is_recovered(tmp_path, monkeypatch):
    lake = Lake(str(tmp_path / "lake"))
    lake.write_table(Zone.RAW, DAY, df(3, 1.0))
    real_mv = lake.fs.mv
    calls = []

    class Killed(BaseException):
        pass

    def mv(src, dst, **kw):
        calls.append((src, dst))
        if len(calls) >= 2:  # old partition moved aside, then the process dies (no rollback)
            raise Killed
        return real_mv(src, dst, **kw)

    monkeypatch.setattr(lake.fs, "mv", mv)
    with pytest.raises(Killed):
        lake.write_table(Zone.RAW, DAY, df(5, 2.0))
    monkeypatch.undo()
    assert not (tmp_path / "lake/raw" / f"ds={DAY}").exists()  # mid-swap: nothing at the name
    fresh = Lake(str(tmp_path / "lake"))
    assert fresh.read_table(Zone.RAW, DAY)["x"].tolist() == [2.0] * 5
    assert os.listdir(tmp_path / "lake/raw/_tmp") == []


def test_concurrent_writers_of_one_date_never_mix_two_versions():
    lake = flaky_lake()
    lake.fs.copy_delay_s = 0.01  # wide windows between the copies of one publish
    errors = []

    def writer(k):
        try:
            for i in range(4):
                n = 10 * k + i + 1
                lake.write_table(Zone.RAW, DAY, df(n, float(n)), meta={"n": n})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in (1, 2, 3)]
    for t in threads:
        t.start()
    seen = 0
    while any(t.is_alive() for t in threads):
        if lake.exists(Zone.RAW, DAY):
            try:
                meta, data = lake.read_meta(Zone.RAW, DAY), lake.read_table(Zone.RAW, DAY)
            except (PartitionNotFound, FileNotFoundError):
                continue  # replaced between the two reads
            seen += 1
        time.sleep(0.005)
    for t in threads:
        t.join()
    assert not errors
    meta, data = lake.read_meta(Zone.RAW, DAY), lake.read_table(Zone.RAW, DAY)
    assert meta["rows"] == len(data) == meta["n"] and data["x"].eq(float(meta["n"])).all()
    assert seen > 0


_HOLDER = """
import sys, time
from anomalyops.lake import Lake
with Lake(sys.argv[1]).lock("2026-11-05", purpose="readmit 2026-11-05"):
    print("held", flush=True)
    time.sleep(60)
"""


def _hold_lock_in_subprocess(root):
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, root], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_waits_for_the_lock_and_names_its_holder(tmp_path):
    root = str(tmp_path / "lake")
    holder = _hold_lock_in_subprocess(root)
    try:
        lake = Lake(root, lock_settings=LakeLockSettings(timeout_s=0.5, poll_s=0.05))
        started = time.monotonic()
        with pytest.raises(PartitionLocked, match=r"'readmit 2026-11-05' \(pid \d+"):
            lake.write_table(Zone.RAW, DAY, df())
        assert 0.4 < time.monotonic() - started < 5
        assert not lake.exists(Zone.RAW, DAY)
        assert os.listdir(tmp_path / "lake/raw/_tmp") == []  # the refused write left nothing
        # Another date is not blocked.
        lake.write_table(Zone.RAW, "2026-11-06", df())
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The holder died without releasing: the kernel dropped its lock, nothing is stale.
    lake = Lake(root, lock_settings=LakeLockSettings(timeout_s=0.5, poll_s=0.05))
    lake.write_table(Zone.RAW, DAY, df())
    assert lake.exists(Zone.RAW, DAY)


def test_object_store_lock_object_blocks_until_it_expires(caplog):
    settings = LakeLockSettings(timeout_s=0.3, poll_s=0.05, ttl_s=60)
    lake = Lake(f"memory://lake-{uuid.uuid4().hex}", lock_settings=settings)
    lock_path = f"{lake.root}/_locks/ds={DAY}.lock"
    foreign = {"owner": "x", "host": "airflow-worker-1", "pid": 7, "purpose": "publish raw",
               "since": "2026-11-05T00:00:00+00:00", "expires_at": time.time() + 60}  # fmt: skip
    lake._put(lock_path, json.dumps(foreign).encode())
    with pytest.raises(PartitionLocked, match="'publish raw' \\(pid 7 on airflow-worker-1"):
        lake.write_table(Zone.RAW, DAY, df())
    foreign["expires_at"] = time.time() - 1  # its owner died and stopped renewing it
    lake._put(lock_path, json.dumps(foreign).encode())
    with caplog.at_level(logging.WARNING):
        lake.write_table(Zone.RAW, DAY, df())
    assert "breaking the abandoned lake lock" in caplog.text
    assert lake.exists(Zone.RAW, DAY) and not lake.fs.exists(lock_path)


def test_object_store_lock_is_renewed_while_held():
    settings = LakeLockSettings(timeout_s=0.2, poll_s=0.05, ttl_s=0.3)
    lake = Lake(f"memory://lake-{uuid.uuid4().hex}", lock_settings=settings)
    lock_path = f"{lake.root}/_locks/ds={DAY}.lock"
    with lake.lock(DAY, purpose="long readmit"):
        first = json.loads(lake.fs.cat(lock_path))["expires_at"]
        time.sleep(0.5)  # longer than the lease: only renewal keeps it
        held = json.loads(lake.fs.cat(lock_path))
        assert held["expires_at"] > first and held["expires_at"] > time.time()
    assert not lake.fs.exists(lock_path)


def test_the_lock_is_reentrant_in_one_thread(tmp_path):
    lake = Lake(str(tmp_path / "lake"), lock_settings=LakeLockSettings(timeout_s=0.2))
    with lake.lock(DAY, purpose="readmit"), lake.lock(DAY, purpose="inner"):
        lake.write_table(Zone.RAW, DAY, df())
    assert lake.exists(Zone.RAW, DAY)


def test_a_reader_that_cannot_finish_a_publish_does_not_fail(caplog):
    lake = flaky_lake()
    lake.write_table(Zone.RAW, DAY, df(3, 1.0))
    lake.fs.copies_left = 0  # the store keeps failing, for the reader too
    with pytest.raises(OSError):
        lake.write_table(Zone.RAW, DAY, df(4, 2.0))
    with caplog.at_level(logging.WARNING):
        assert not lake.exists(Zone.RAW, DAY)
        assert lake.partitions(Zone.RAW) == []
    assert "could not finish the publish" in caplog.text
    lake.fs.copies_left = None  # the store is back: the next read finishes it
    assert lake.read_table(Zone.RAW, DAY)["x"].tolist() == [2.0] * 4
