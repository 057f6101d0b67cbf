"""When a day's landing folder counts as complete: marker, quiet period, or neither yet."""

import datetime as dt
import os

import pytest

from anomalyops.lake import Lake
from anomalyops.settings import LandingSettings
from anomalyops.sources.arrival import ArrivalRules, ArrivalState, check_arrival, write_marker

DAY = dt.date(2026, 11, 5)
NOW = dt.datetime(2026, 11, 6, 3, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def lake(tmp_path):
    return Lake(str(tmp_path / "lake"))


def _drop(lake, name, *, minutes_ago: float, content=b"a,b\n1,2\n"):
    path = f"{lake.landing_path(DAY)}/{name}"
    lake.fs.makedirs(lake.landing_path(DAY), exist_ok=True)
    lake.fs.pipe_file(path, content)
    stamp = (NOW - dt.timedelta(minutes=minutes_ago)).timestamp()
    os.utime(path, (stamp, stamp))


def test_no_folder_and_empty_folder_wait(lake):
    rules = ArrivalRules()
    assert check_arrival(lake, DAY, rules, NOW).state is ArrivalState.EMPTY
    lake.fs.makedirs(lake.landing_path(DAY), exist_ok=True)
    got = check_arrival(lake, DAY, rules, NOW)
    assert got.state is ArrivalState.EMPTY and got.problem is None and "no .csv" in got.detail


def test_the_marker_completes_a_day_at_once(lake):
    _drop(lake, "export.csv", minutes_ago=0)
    rules = ArrivalRules(ready_marker="_READY", quiet_period_s=600)
    assert check_arrival(lake, DAY, rules, NOW).state is ArrivalState.INCOMPLETE
    write_marker(lake, DAY, "_READY")
    got = check_arrival(lake, DAY, rules, NOW)
    assert got.ready and got.files == ["export.csv"] and "_READY found" in got.detail


def test_a_quiet_period_completes_a_day_without_a_marker(lake):
    _drop(lake, "a.parquet", minutes_ago=30)
    _drop(lake, "b.csv", minutes_ago=4)
    rules = ArrivalRules(ready_marker="_READY", quiet_period_s=300)
    got = check_arrival(lake, DAY, rules, NOW)
    assert got.state is ArrivalState.INCOMPLETE and "5 min without changes" in got.detail
    later = check_arrival(lake, DAY, rules, NOW + dt.timedelta(minutes=1, seconds=1))
    assert later.ready and later.files == ["a.parquet", "b.csv"]


def test_a_hidden_temp_file_being_written_counts_as_activity(lake):
    _drop(lake, "a.csv", minutes_ago=60)
    _drop(lake, ".b.csv.part", minutes_ago=1)
    got = check_arrival(lake, DAY, ArrivalRules(quiet_period_s=300), NOW)
    assert got.state is ArrivalState.INCOMPLETE and got.files == ["a.csv"]


def test_marker_only_rules_never_complete_on_quiet(lake):
    _drop(lake, "a.csv", minutes_ago=10_000)
    got = check_arrival(lake, DAY, ArrivalRules("_DONE", None), NOW)
    assert got.state is ArrivalState.INCOMPLETE and "waiting for _DONE" in got.detail


def test_a_marker_without_data_is_a_problem_not_a_wait(lake):
    _drop(lake, "export.xlsx", minutes_ago=60)
    write_marker(lake, DAY, "_READY")
    got = check_arrival(lake, DAY, ArrivalRules(), NOW)
    assert got.problem and "_READY marks the day complete" in got.problem
    assert "export.xlsx" in got.problem and got.ignored == ["export.xlsx"]


def test_settings_refuse_rules_that_never_complete_and_markers_outside_the_folder():
    with pytest.raises(ValueError, match=r"nothing\s+would ever mark a day complete"):
        LandingSettings(ready_marker=None, quiet_period_s=None)
    with pytest.raises(ValueError, match="plain file"):
        LandingSettings(ready_marker="../_READY")
    assert LandingSettings(ready_marker=None).quiet_period_s == 600
