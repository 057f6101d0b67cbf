import datetime as dt

import pandas as pd
import pytest

from anomalyops.lake import Lake, PartitionNotFound, Zone, as_date

pytestmark = pytest.mark.unit


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
