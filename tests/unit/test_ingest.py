import json

import pytest

from anomalyops.ingest import SIMULATED_FILE, ingest, land
from anomalyops.lake import Lake, Zone
from anomalyops.settings import Settings
from anomalyops.sources.landing import IngestError


def test_simulator_lands_then_ingest_writes_raw(settings_env):
    s = settings_env()
    assert land("2026-11-05", s) == [SIMULATED_FILE]
    result = ingest("2026-11-05", s)
    lake = Lake(s.lake_root)
    assert result.rows == 288 and lake.exists(Zone.RAW, "2026-11-05")
    first = lake.read_table(Zone.RAW, "2026-11-05")
    # a re-run of the same day replaces, and yields the same data
    land("2026-11-05", s)
    ingest("2026-11-05", s)
    assert lake.read_table(Zone.RAW, "2026-11-05").equals(first)
    assert lake.partitions(Zone.RAW) == [first["timestamp"].dt.date.iloc[0]]


def test_landing_source_without_files_says_where_to_drop(settings_env, monkeypatch):
    monkeypatch.setenv("ANOMALYOPS_SOURCE", "landing")
    s = settings_env()
    with pytest.raises(FileNotFoundError, match=r"landing/2026-11-05/ for 2026-11-05"):
        land("2026-11-05", s)


def test_user_files_are_ingested(settings_env, monkeypatch):
    monkeypatch.setenv("ANOMALYOPS_SOURCE", "landing")
    s = settings_env()
    lake = Lake(s.lake_root)
    folder = lake.landing_path("2026-11-05")
    lake.fs.makedirs(folder, exist_ok=True)
    header = "station_id,timestamp,inlet_pressure,outlet_pressure,inlet_temperature,outlet_temperature,motor_current,vibration,shaft_speed,flow_rate\n"
    row = "s1,2026-11-05T{h:02d}:00:00Z,8,40,15,90,200,10,6000,2500\n"
    for part in ("a", "b"):
        with lake.fs.open(f"{folder}/{part}.csv", "w") as f:
            f.write(header + "".join(row.format(h=h) for h in range(3)))
    with lake.fs.open(f"{folder}/notes.txt", "w") as f:
        f.write("ignored")
    assert land("2026-11-05", s) == ["a.csv", "b.csv"]
    assert ingest("2026-11-05", s).rows == 6


def test_unreadable_day_is_quarantined_with_reason_and_nothing_reaches_raw(
    settings_env, monkeypatch
):
    monkeypatch.setenv(
        "ANOMALYOPS_SIMULATOR__CORRUPT_DAYS", json.dumps({"2026-11-06": "type_change"})
    )
    s = settings_env()
    land("2026-11-06", s)
    with pytest.raises(
        IngestError,
        match=r"landing/2026-11-06/simulated.parquet: column '\w+': not a number at row 1",
    ):
        ingest("2026-11-06", s)
    lake = Lake(s.lake_root)
    assert not lake.exists(Zone.RAW, "2026-11-06")
    reason = json.loads(lake.read_file(Zone.QUARANTINE, "2026-11-06", "reason.json"))
    assert reason["stage"] == "ingest" and reason["files"] == [SIMULATED_FILE]
    assert lake.read_file(Zone.QUARANTINE, "2026-11-06", SIMULATED_FILE)  # the evidence is kept


def test_reingest_keeps_a_gate_quarantine(settings_env):
    s = settings_env()
    lake = Lake(s.lake_root)
    lake.write_files(Zone.QUARANTINE, "2026-11-05", {"reason.json": b'{"stage": "gate"}'})
    land("2026-11-05", s)
    ingest("2026-11-05", s)
    assert lake.exists(Zone.QUARANTINE, "2026-11-05"), "a gate quarantine waits for readmit"
    lake.write_files(Zone.QUARANTINE, "2026-11-05", {"reason.json": b'{"stage": "ingest"}'})
    ingest("2026-11-05", s)
    assert not lake.exists(Zone.QUARANTINE, "2026-11-05"), "an ingest rejection is resolved"


def test_object_store_landing_checks_size_before_reading(settings_env, monkeypatch, tmp_path):
    # memory:// takes the fsspec branch (no symlinks or FIFOs there): type and size from the
    # listing, checked before the file is opened.
    monkeypatch.setenv("ANOMALYOPS_SOURCE", "landing")
    monkeypatch.setenv("ANOMALYOPS_LAKE_ROOT", f"memory://{tmp_path.name}/lake")
    s = settings_env()
    lake = Lake(s.lake_root)
    folder = lake.landing_path("2026-11-05")
    header = "station_id,timestamp,inlet_pressure,outlet_pressure,inlet_temperature,outlet_temperature,motor_current,vibration,shaft_speed,flow_rate\n"
    with lake.fs.open(f"{folder}/a.csv", "w") as f:
        f.write(header + "s1,2026-11-05T00:00:00Z,8,40,15,90,200,10,6000,2500\n")
    assert ingest("2026-11-05", s).rows == 1
    monkeypatch.setenv("ANOMALYOPS_INGEST__MAX_FILE_BYTES", "100")
    s = Settings()
    with pytest.raises(IngestError, match=r"a\.csv: refused: 1\d\d bytes exceeds .*= 100\)"):
        ingest("2026-11-05", s)
    reason = json.loads(lake.read_file(Zone.QUARANTINE, "2026-11-05", "reason.json"))
    assert reason["not_copied"] == ["a.csv"]
    assert not lake.fs.exists(f"{lake.partition_path(Zone.QUARANTINE, '2026-11-05')}/a.csv")
