"""One day of served traffic: what the scoring API flagged that day, against the model's band.

The API counts, per model version, the rows it scored and flagged since its process started
(``GET /v1/models/{version}/traffic``, in memory). The daily check reads those counters, takes
the difference with the snapshot it recorded the day before (same version, same process
start), judges that day's alarm rate with :mod:`anomalyops.alarm_band` and records the result
in the lake, ``monitoring/ds=<day>/traffic.json``. A restarted API or a new version starts
from zero, so the whole counter is that day's share. Nothing here talks HTTP.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from anomalyops.alarm_band import TrafficStatus, assess_counts
from anomalyops.lake import Lake, PartitionNotFound, Zone, as_date

log = logging.getLogger(__name__)

TRAFFIC_FILE = "traffic.json"


class Counters(BaseModel):
    """The API's cumulative counters for one version, as ``/traffic`` reported them."""

    model_config = ConfigDict(extra="ignore")

    version: int
    rows: int = Field(ge=0)
    flagged: int = Field(ge=0)
    unscored: int = Field(default=0, ge=0)
    calibrated_alarm_rate: float | None = None
    since: str | None = None
    """When the API process first counted this version: a different value means a restart."""


class TrafficDay(BaseModel):
    """``traffic.json``: one day's served traffic and its verdict."""

    ds: str
    version: int
    rows: int
    flagged: int
    unscored: int = 0
    alarm_rate: float | None = None
    alarm_rate_interval: tuple[float, float] | None = None
    calibrated_alarm_rate: float | None = None
    max_alarm_rate: float | None = None
    min_rows: int
    status: TrafficStatus
    summary: str
    counters: Counters
    """The cumulative counters read this day: the next day's baseline."""
    baseline: str | None = None
    """The day whose counters were subtracted (None: the counters started this day)."""
    checked_at: str
    alerts: list[dict[str, Any]] = Field(default_factory=list)


def day_share(current: Counters, previous: Counters | None) -> tuple[Counters, bool]:
    """``current`` minus ``previous`` when both count the same version in the same process
    (else ``current`` whole); the flag says whether ``previous`` was subtracted."""
    same = (
        previous is not None
        and previous.version == current.version
        and previous.since == current.since
        and previous.rows <= current.rows
        and previous.flagged <= current.flagged
    )
    if not same:
        return current, False
    return (
        current.model_copy(
            update={
                "rows": current.rows - previous.rows,
                "flagged": current.flagged - previous.flagged,
                "unscored": max(current.unscored - previous.unscored, 0),
            }
        ),
        True,
    )


def assess_served_day(
    ds: str | dt.date,
    current: Counters,
    previous: TrafficDay | None,
    *,
    max_ratio: float,
    min_rows: int,
) -> TrafficDay:
    """The day's share of ``current`` and whether its alarm rate left the band."""
    day = as_date(ds)
    share, subtracted = day_share(current, previous.counters if previous else None)
    verdict = assess_counts(
        share.version,
        share.rows,
        share.flagged,
        share.calibrated_alarm_rate,
        max_ratio=max_ratio,
        min_rows=min_rows,
        unscored=share.unscored,
        scope=f"on {day}",
    )
    return TrafficDay(
        ds=day.isoformat(),
        version=share.version,
        rows=share.rows,
        flagged=share.flagged,
        unscored=share.unscored,
        alarm_rate=verdict.alarm_rate,
        alarm_rate_interval=verdict.interval,
        calibrated_alarm_rate=share.calibrated_alarm_rate,
        max_alarm_rate=verdict.max_alarm_rate,
        min_rows=min_rows,
        status=verdict.status,
        summary=verdict.summary,
        counters=current,
        baseline=previous.ds if (previous and subtracted) else None,
        checked_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def write_day(lake: Lake, record: TrafficDay) -> str:
    """Atomically (re)write ``monitoring/ds=<day>/traffic.json``."""
    data = json.dumps(record.model_dump(mode="json"), indent=2).encode()
    meta = {"status": record.status.value}
    with lake.transaction(Zone.MONITORING, record.ds, meta=meta) as tmp:
        lake.fs.pipe_file(f"{tmp}/{TRAFFIC_FILE}", data)
    return record_uri(lake, record.ds)


def record_uri(lake: Lake, ds: str | dt.date) -> str:
    """Where the day's ``traffic.json`` is (or will be) in the lake."""
    return lake.uri(f"{lake.partition_path(Zone.MONITORING, ds)}/{TRAFFIC_FILE}")


def read_day(lake: Lake, ds: str | dt.date) -> TrafficDay:
    if not lake.exists(Zone.MONITORING, ds):
        raise PartitionNotFound(f"no served-traffic record for {as_date(ds)}")
    with lake.fs.open(f"{lake.partition_path(Zone.MONITORING, ds)}/{TRAFFIC_FILE}", "rb") as f:
        return TrafficDay.model_validate_json(f.read())


def previous_day(lake: Lake, ds: str | dt.date) -> TrafficDay | None:
    """The newest record before ``ds`` (the baseline to subtract), if any."""
    day = as_date(ds)
    earlier = [d for d in lake.partitions(Zone.MONITORING) if d < day]
    return read_day(lake, earlier[-1]) if earlier else None
