"""The lake root as an object-store URL: the real landing -> raw path and every zone operation,
configured only through ``ANOMALYOPS_LAKE_ROOT``, on two non-local fsspec filesystems:

- ``memory://``: no real directories, and a rename that is a copy (as on S3/GCS);
- ``s3://`` on a local S3-compatible server (moto, on loopback), through s3fs: the real S3 API.

Neither is shared with Beam workers or other containers here; docs/operations.md says which
URLs work for the TFX side.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import uuid

import fsspec
import pytest

from anomalyops.ingest import SIMULATED_FILE, ingest, land
from anomalyops.lake import DATA_FILE, SUCCESS, Lake, PartitionNotFound, Zone

DAYS = [dt.date(2026, 11, 2), dt.date(2026, 11, 3)]

STORES = ["memory", "s3"]


@pytest.fixture(scope="module")
def s3_endpoint():
    """A local S3-compatible server (moto) on a free loopback port."""
    server_mod = pytest.importorskip("moto.server", reason="moto[server] (dev) not installed")
    pytest.importorskip("s3fs", reason="s3fs (dev) not installed")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def object_store_settings(request, settings_env, monkeypatch):
    """Settings whose lake root is a fresh location on the requested store."""
    name = f"lake-{uuid.uuid4().hex[:8]}"
    if request.param == "memory":
        root = f"memory://{name}"
    else:
        import boto3
        import s3fs

        # What a deployment sets for MinIO or any S3-compatible service: only environment.
        monkeypatch.setenv("AWS_ENDPOINT_URL", request.getfixturevalue("s3_endpoint"))
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        boto3.client("s3").create_bucket(Bucket=name)
        s3fs.S3FileSystem.clear_instance_cache()
        root = f"s3://{name}/lake"
    monkeypatch.setenv("ANOMALYOPS_LAKE_ROOT", root)
    settings_env.cache_clear()
    yield settings_env()
    if request.param == "memory":
        fs = fsspec.filesystem("memory")
        if fs.exists(root):
            fs.rm(root, recursive=True)
    else:
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.mark.parametrize("object_store_settings", STORES, indirect=True)
def test_settings_take_an_object_store_url_as_lake_root(object_store_settings):
    scheme = object_store_settings.lake_root.split("://", 1)[0]
    lake = Lake(object_store_settings.lake_root)
    assert scheme in lake.fs.protocol
    assert lake.uri(lake.partition_path(Zone.RAW, DAYS[0])).startswith(f"{scheme}://")
    assert lake.partitions(Zone.RAW) == []


@pytest.mark.parametrize("object_store_settings", STORES, indirect=True)
def test_landing_and_ingest_write_raw_partitions_to_the_object_store(object_store_settings):
    settings = object_store_settings
    lake = Lake(settings.lake_root)
    for day in DAYS:
        assert land(day, settings) == [SIMULATED_FILE]
        result = ingest(day, settings)
        assert result.rows == 288
        assert result.path == lake.uri(lake.partition_path(Zone.RAW, day))
        assert result.path.endswith(f"/raw/ds={day}")
    assert lake.partitions(Zone.RAW) == DAYS
    df = lake.read_table(Zone.RAW, DAYS[0])
    assert len(df) == 288 and str(df.dtypes.iloc[0]).startswith("datetime64[ns")
    assert lake.read_meta(Zone.RAW, DAYS[0])["rows"] == 288
    # Nothing was written to the local disk under the URL's name.
    local = fsspec.filesystem("file")
    assert not local.exists(settings.lake_root.split("://", 1)[1])
    # No temporary directories are left behind in the object store.
    assert [p for p in lake.fs.find(lake.root) if "/_tmp/" in p] == []


@pytest.mark.parametrize("object_store_settings", STORES, indirect=True)
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
    with pytest.raises(PartitionNotFound, match="://"):
        lake.read_table(Zone.QUARANTINE, day)

    # Re-ingesting replaces raw/ atomically: the old copy is renamed aside, then removed.
    first = lake.read_meta(Zone.RAW, day)["written_at"]
    ingest(day, settings)
    assert lake.read_meta(Zone.RAW, day)["written_at"] >= first
    names = lake.fs.ls(lake.partition_path(Zone.RAW, day), detail=False)
    assert sorted(n.rsplit("/", 1)[-1] for n in names) == [SUCCESS, DATA_FILE]
    assert lake.remove(Zone.RAW, day, reason="test")
    assert lake.partitions(Zone.RAW) == []


@pytest.mark.parametrize("object_store_settings", STORES, indirect=True)
def test_a_failed_write_leaves_no_partition_in_the_object_store(object_store_settings):
    lake = Lake(object_store_settings.lake_root)
    with pytest.raises(RuntimeError), lake.transaction(Zone.REPORTS, DAYS[0]) as tmp:
        lake.fs.pipe(f"{tmp}/half.json", b"{}")
        raise RuntimeError("crash half-way")
    assert not lake.exists(Zone.REPORTS, DAYS[0])
    assert [p for p in lake.fs.find(lake.root) if "half.json" in p] == []
