"""The ingest DAG's ``land`` task: wait, deferred, until a day's files have fully arrived.

With ``ANOMALYOPS_SOURCE=landing`` users or a feed drop the day's files in ``landing/<date>/``.
The task looks once; if the day is not complete (:mod:`anomalyops.sources.arrival`: a
``_READY`` marker or a quiet period), it defers to :class:`LandingTrigger`, which polls the
folder in the triggerer without holding a worker slot. Past the deadline (the end of the day
plus ``ANOMALYOPS_LANDING__DEADLINE_H``) it emails a "data late" alert and fails the run
without retries: retrying cannot make files arrive, and clearing the task restarts the wait.
With the simulator as source the task writes the simulated day instead, which is whole at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from anomalyops.settings import Settings, get_settings
from anomalyops_airflow.compat import (
    AirflowFailException,
    BaseSensorOperator,
    BaseTrigger,
    TriggerEvent,
)

log = logging.getLogger(__name__)


class LandingTrigger(BaseTrigger):
    """Poll ``landing/<ds>/`` until it is complete or ``deadline`` passes; fires once."""

    def __init__(
        self,
        *,
        lake_root: str,
        ds: str,
        ready_marker: str | None,
        quiet_period_s: float | None,
        deadline: str,
        poke_interval_s: float,
    ):
        super().__init__()
        self.lake_root = lake_root
        self.ds = ds
        self.ready_marker = ready_marker
        self.quiet_period_s = quiet_period_s
        self.deadline = deadline
        self.poke_interval_s = poke_interval_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "lake_root": self.lake_root,
                "ds": self.ds,
                "ready_marker": self.ready_marker,
                "quiet_period_s": self.quiet_period_s,
                "deadline": self.deadline,
                "poke_interval_s": self.poke_interval_s,
            },
        )

    async def run(self):
        from anomalyops.lake import Lake
        from anomalyops.sources.arrival import ArrivalRules, check_arrival

        lake, day = Lake(self.lake_root), dt.date.fromisoformat(self.ds)
        rules = ArrivalRules(self.ready_marker, self.quiet_period_s)
        deadline = dt.datetime.fromisoformat(self.deadline)
        while True:
            now = _utcnow()
            # fsspec calls block (a remote lake's listing is network I/O): keep the loop free.
            arrival = await asyncio.to_thread(check_arrival, lake, day, rules, now)
            if arrival.ready or arrival.problem:
                yield TriggerEvent({"status": arrival.state.value, "detail": arrival.detail})
                return
            if now >= deadline:
                yield TriggerEvent({"status": "late", "detail": arrival.detail})
                return
            self.log.info("%s: %s", self.ds, arrival.detail)
            left = (deadline - now).total_seconds()
            await asyncio.sleep(max(0.0, min(self.poke_interval_s, left)))


class LandingSensor(BaseSensorOperator):
    """Deferrable wait for ``landing/<ds>/`` (see the module docstring); returns the files."""

    template_fields = ("ds",)
    ui_color = "#e8f4fa"

    def __init__(self, *, ds: str = "{{ ds }}", **kwargs):
        super().__init__(**kwargs)
        self.ds = ds

    def poke(self, context) -> bool:
        return self._arrival(get_settings()).ready

    def execute(self, context) -> list[str]:
        settings = get_settings()
        if settings.source == "simulator":
            from anomalyops_airflow.tasks import land

            return land(self.ds)
        return self._judge(context, settings)

    def execute_complete(self, context, event: dict | None = None) -> list[str]:
        # Judge the folder afresh: files may have landed since the trigger fired.
        return self._judge(context, get_settings())

    def _arrival(self, settings: Settings):
        from anomalyops.lake import Lake
        from anomalyops.sources.arrival import ArrivalRules, check_arrival

        rules = ArrivalRules.from_settings(settings.landing)
        day = dt.date.fromisoformat(self.ds)
        return check_arrival(Lake(settings.lake_root), day, rules, _utcnow())

    def _judge(self, context, settings: Settings) -> list[str]:
        arrival = self._arrival(settings)
        if arrival.problem:
            raise AirflowFailException(arrival.problem)
        if arrival.ready:
            self.log.info("%s is complete: %s", self.ds, arrival.detail)
            return arrival.files
        deadline = deadline_for(self.ds, settings)
        if _utcnow() >= deadline:
            self._late(context, settings, arrival, deadline)
        self.log.info("%s: %s; waiting until %s at the latest", self.ds, arrival.detail, deadline)
        self.defer(
            trigger=LandingTrigger(
                lake_root=settings.lake_root,
                ds=self.ds,
                ready_marker=settings.landing.ready_marker,
                quiet_period_s=settings.landing.quiet_period_s,
                deadline=deadline.isoformat(),
                poke_interval_s=settings.landing.poke_interval_s,
            ),
            method_name="execute_complete",
        )

    def _late(self, context, settings: Settings, arrival, deadline: dt.datetime) -> None:
        from anomalyops import alerts
        from anomalyops.lake import Lake
        from anomalyops_airflow import alerting

        lake = Lake(settings.lake_root)
        ti = context.get("task_instance")
        url = alerting.task_log_location(ti)[0] if ti is not None else None
        msg = alerts.render_late_email(
            self.ds,
            arrival,
            f"{deadline:%Y-%m-%d %H:%M} UTC",
            settings,
            folder=f"{lake.uri(lake.landing_path(self.ds))}/",
            log_url=url,
            **alerting.run_info(context),
        )
        delivery = alerting.send(msg, settings)
        sent = "alert sent" if delivery["sent"] else f"ALERT NOT SENT ({delivery['error']})"
        exc = AirflowFailException(
            f"data late: {self.ds} not complete by {deadline:%Y-%m-%d %H:%M} UTC "
            f"({arrival.detail}; {sent})"
        )
        setattr(exc, alerting.ALERTED_ATTR, True)  # one failure, one email
        raise exc


def deadline_for(ds: str, settings: Settings) -> dt.datetime:
    """The end of the day ``ds`` (UTC) plus the configured grace.

    From ``ds`` rather than the run's data interval: a manual run's interval ends at its
    logical date, yet ``landing/<ds>/`` holds the same day of data either way.
    """
    day_end = dt.datetime.combine(
        dt.date.fromisoformat(ds) + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc
    )
    return day_end + dt.timedelta(hours=settings.landing.deadline_h)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
