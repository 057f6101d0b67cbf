"""The landing trigger survives the triggerer's serialization and fires once, as it should."""

import asyncio
import datetime as dt

from anomalyops.lake import Lake
from anomalyops_airflow.compat import import_string
from anomalyops_airflow.landing import LandingTrigger

UTC = dt.timezone.utc


def _trigger(lake_root: str, deadline: dt.datetime) -> LandingTrigger:
    return LandingTrigger(
        lake_root=lake_root,
        ds="2026-11-05",
        ready_marker="_READY",
        quiet_period_s=None,
        deadline=deadline.isoformat(),
        poke_interval_s=0.05,
    )


def _first_event(trigger):
    async def first():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(asyncio.wait_for(first(), timeout=20))


def test_serialize_round_trips_through_its_import_path(tmp_path):
    trigger = _trigger(str(tmp_path), dt.datetime(2026, 11, 6, 6, tzinfo=UTC))
    path, kwargs = trigger.serialize()
    again = import_string(path)(**kwargs)
    assert again.serialize() == (path, kwargs)


def test_fires_ready_once_the_marker_is_written(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    folder = lake.landing_path("2026-11-05")
    lake.fs.makedirs(folder, exist_ok=True)
    lake.fs.pipe_file(f"{folder}/a.csv", b"x\n1\n")
    lake.fs.pipe_file(f"{folder}/_READY", b"")
    event = _first_event(_trigger(lake.url, dt.datetime.now(UTC) + dt.timedelta(hours=1)))
    assert event["status"] == "ready" and "_READY found" in event["detail"]


def test_fires_late_at_the_deadline_with_what_it_saw(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    event = _first_event(_trigger(lake.url, dt.datetime.now(UTC) + dt.timedelta(seconds=0.3)))
    assert event["status"] == "late" and "does not exist yet" in event["detail"]
