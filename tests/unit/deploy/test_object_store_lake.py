"""The lake root as an object-store URL: the real landing -> raw path and every zone operation on
a non-local fsspec filesystem (``memory://``), configured only through ``ANOMALYOPS_LAKE_ROOT``.

``memory://`` has what S3/GCS have and a local disk hides: no real directories, and a rename
that is a copy. It lives in this process only, so it cannot be shared with Beam workers or
other containers; docs/operations.md says which URLs work for the TFX side.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import fsspec
import pytest

from anomalyops.ingest import SIMULATED_FILE, ingest, land
from anomalyops.lake import DATA_FILE, SUCCESS, Lake, PartitionNotFound, Zone

pytestmark = pytest.mark.unit

DAYS = [dt.date(2026, 11, 2), dt.date(2026, 11, 3)]


@pytest.fixture
def object_store_settings(settings_env, monkeypatch):
    root = f"memory://lake-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("ANOMALYOPS_LAKE_ROOT", root)
    settings_env.cache_clear()
    settings = settings_env()
    yield settings
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_settings_take_an_object_store_url_as_lake_root(object_store_settings):
    lake = Lake(object_store_settings.lake_root)
    assert object_store_settings.lake_root.startswith("memory://lake-")
    assert "memory" in lake.fs.protocol
    assert lake.uri(lake.partition_path(Zone.RAW, DAYS[0])).startswith("memory://")


def test_landing_and_ingest_write_raw_partitions_to_the_object_store(object_store_settings):
    settings = object_store_settings
    lake = Lake(settings.lake_root)
    for day in DAYS:
        assert land(day, settings) == [SIMULATED_FILE]
        result = ingest(day, settings)
        assert result.rows == 288
        assert result.path == lake.uri(lake.partition_path(Zone.RAW, day))
        assert result.path.startswith("memory://") and result.path.endswith(f"/raw/ds={day}")
    assert lake.partitions(Zone.RAW) == DAYS
    df = lake.read_table(Zone.RAW, DAYS[0])
    assert len(df) == 288 and str(df.dtypes.iloc[0]).startswith("datetime64[ns")
    assert lake.read_meta(Zone.RAW, DAYS[0])["rows"] == 288
    # Nothing was written to the local disk under the URL's name.
    local = fsspec.filesystem("file")
    assert not local.exists(settings.lake_root.split("://", 1)[1])
    # No temporary directories are left behind in the object store.
    assert [p for p in lake.fs.find(lake.root) if "/_tmp/" in p] == []


def test_zone_operations_on_the_object_store(object_store_settings):
    settings = object_store_settings
    lake = Lake(settings.lake_root)
    day = DAYS[0]
    land(day, settings)
    ingest(day, settings)

    lake.copy(day, Zone.RAW, Zone.VALIDATED, meta={"gate": "pass"})
    assert lake.partitions(Zone.VALIDATED) == [day]
    assert lake.read_meta(Zone.VALIDATED, day)["copied_from"] == "raw"

    reason = json.dumps({"why": "test"}).encode()
    lake.move(day, Zone.VALIDATED, Zone.QUARANTINE, files={"reason.json": reason})
    assert not lake.exists(Zone.VALIDATED, day)
    assert lake.read_file(Zone.QUARANTINE, day, "reason.json") == reason
    assert len(lake.read_table(Zone.QUARANTINE, day)) == 288

    assert lake.remove(Zone.QUARANTINE, day, reason="test")
    with pytest.raises(PartitionNotFound, match="memory://"):
        lake.read_table(Zone.QUARANTINE, day)

    # Re-ingesting replaces raw/ atomically: the old copy is renamed aside, then removed.
    first = lake.read_meta(Zone.RAW, day)["written_at"]
    ingest(day, settings)
    assert lake.read_meta(Zone.RAW, day)["written_at"] >= first
    names = lake.fs.ls(lake.partition_path(Zone.RAW, day), detail=False)
    assert sorted(n.rsplit("/", 1)[-1] for n in names) == [SUCCESS, DATA_FILE]
    assert lake.remove(Zone.RAW, day, reason="test")
    assert lake.partitions(Zone.RAW) == []


def test_a_failed_write_leaves_no_partition_in_the_object_store(object_store_settings):
    lake = Lake(object_store_settings.lake_root)
    with pytest.raises(RuntimeError), lake.transaction(Zone.REPORTS, DAYS[0]) as tmp:
        lake.fs.pipe(f"{tmp}/half.json", b"{}")
        raise RuntimeError("crash half-way")
    assert not lake.exists(Zone.REPORTS, DAYS[0])
    assert [p for p in lake.fs.find(lake.root) if "half.json" in p] == []
