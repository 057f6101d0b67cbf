"""One day of served traffic: the day's share of the API's counters, its verdict, its record."""

from __future__ import annotations

import email.policy
from email import message_from_bytes

import pytest

from anomalyops.alarm_band import TrafficStatus
from anomalyops.alerts import render_traffic_email
from anomalyops.lake import Lake, Zone
from anomalyops.served_traffic import (
    Counters,
    assess_served_day,
    day_share,
    previous_day,
    read_day,
    write_day,
)
from anomalyops.settings import Settings


def counters(rows, flagged, *, version=7, since="2026-12-01T00:00:00+00:00", unscored=0):
    return Counters(
        version=version,
        rows=rows,
        flagged=flagged,
        unscored=unscored,
        calibrated_alarm_rate=0.01,
        since=since,
    )


def test_the_days_share_subtracts_the_previous_counters_of_the_same_process():
    share, subtracted = day_share(counters(5000, 400, unscored=9), counters(2000, 20, unscored=4))
    assert subtracted and (share.rows, share.flagged, share.unscored) == (3000, 380, 5)


@pytest.mark.parametrize(
    "previous",
    [
        None,
        counters(2000, 20, version=6),  # a new version counts from zero
        counters(2000, 20, since="2026-11-30T00:00:00+00:00"),  # the API restarted
        counters(9000, 20),  # counters went down: a restart we could not see otherwise
    ],
)
def test_a_new_version_or_a_restart_makes_the_whole_counter_the_days_share(previous):
    share, subtracted = day_share(counters(5000, 400), previous)
    assert not subtracted and (share.rows, share.flagged) == (5000, 400)


def test_a_day_far_above_its_calibrated_rate_is_above_the_band():
    day = assess_served_day("2026-12-01", counters(3000, 900), None, max_ratio=5.0, min_rows=1000)
    assert day.status is TrafficStatus.ABOVE_BAND
    assert day.alarm_rate == pytest.approx(0.3) and day.max_alarm_rate == pytest.approx(0.05)
    assert day.alarm_rate_interval[0] > 0.05 and "ABOVE the band" in day.summary


def test_a_calibrated_day_is_within_and_a_small_day_is_not_judged():
    assert (
        assess_served_day(
            "2026-12-01", counters(3000, 30), None, max_ratio=5.0, min_rows=1000
        ).status
        is TrafficStatus.WITHIN_BAND
    )
    small = assess_served_day("2026-12-01", counters(500, 400), None, max_ratio=5.0, min_rows=1000)
    assert small.status is TrafficStatus.TOO_FEW_ROWS and "need 1,000" in small.summary
    empty = assess_served_day("2026-12-01", counters(0, 0), None, max_ratio=5.0, min_rows=1000)
    assert empty.status is TrafficStatus.NO_TRAFFIC and "on 2026-12-01" in empty.summary


def test_records_round_trip_and_the_previous_day_is_the_baseline(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    first = assess_served_day("2026-12-01", counters(3000, 900), None, max_ratio=5.0, min_rows=1000)
    uri = write_day(lake, first)
    assert uri.endswith("monitoring/ds=2026-12-01/traffic.json")
    assert read_day(lake, "2026-12-01") == first
    assert lake.partitions(Zone.MONITORING)[-1].isoformat() == "2026-12-01"
    assert previous_day(lake, "2026-12-01") is None
    prev = previous_day(lake, "2026-12-02")
    second = assess_served_day(
        "2026-12-02", counters(4500, 915), prev, max_ratio=5.0, min_rows=1000
    )
    assert second.baseline == "2026-12-01" and (second.rows, second.flagged) == (1500, 15)
    assert second.status is TrafficStatus.WITHIN_BAND
    write_day(lake, second)
    write_day(lake, second)  # a re-run rewrites the same record
    assert read_day(lake, "2026-12-02").rows == 1500


def test_the_alert_says_what_was_served_and_against_what():
    day = assess_served_day("2026-12-01", counters(3000, 900), None, max_ratio=5.0, min_rows=1000)
    msg = render_traffic_email(day, Settings(), record_uri="file:///lake/monitoring/ds=2026-12-01")
    parsed = message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == (
        "[anomalyops] served traffic drifted on 2026-12-01: model 7 flagged 30.0 % of 3,000 rows"
    )
    text = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    for expected in ("Calibrated for", "1.00 %", "Band up to", "5.00 %", "Rows flagged", "900"):
        assert expected in text and expected in html
    assert "file:///lake/monitoring/ds=2026-12-01" in text
