"""`make run`'s history: the day loop (DAG run injected) and the progress line a person reads."""

from __future__ import annotations

import datetime as dt

import pytest

from anomalyops_devtools import ingest_days
from anomalyops_devtools.ingest_days import (
    DayResult,
    Progress,
    format_day,
    outcome,
    run_days,
    tally,
)

VALIDATED = {"land": "success", "ingest": "success", "validate": "success", "decide": "success"}


def validated(day: str = "2026-11-12", *, drift: str = "skipped") -> DayResult:
    tasks = {**VALIDATED, "promote": "success", "notify_drift": drift, "quarantine": "skipped"}
    return DayResult(day=day, state="success", tasks=tasks, decision="pass")


def quarantined(day: str = "2026-11-18", *, problems: int = 3, sent: bool = True) -> DayResult:
    tasks = {**VALIDATED, "promote": "skipped", "notify_drift": "skipped", "quarantine": "failed"}
    return DayResult(
        day=day,
        state="failed",
        tasks=tasks,
        decision="fail",
        problems=problems,
        alerts={"quarantine": sent},
    )


# -- the words ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (validated(), "validated"),
        (validated(drift="success"), "validated, drift warning sent"),
        (validated(drift="failed"), "validated, drift warning NOT sent"),
        (quarantined(), "quarantined (3 problems, alert sent)"),
        (quarantined(problems=1), "quarantined (1 problem, alert sent)"),
        (quarantined(sent=False), "quarantined (3 problems, ALERT NOT SENT)"),
        (
            DayResult(
                day="2026-11-13",
                state="failed",
                tasks={"land": "success", "ingest": "failed", "validate": "upstream_failed"},
            ),
            "failed at ingest",
        ),
        (DayResult(day="2026-11-13", state="error", error="OperationalError: locked"),
         "error: OperationalError: locked"),
    ],
)  # fmt: skip
def test_outcome_says_what_happened_to_the_day(result: DayResult, expected: str) -> None:
    assert outcome(result) == expected


def test_one_readable_line_per_day() -> None:
    result = quarantined()
    result.seconds = 14.2
    line = format_day(result, 7, 20, 98.4)
    assert line.startswith("2026-11-18  quarantined (3 problems, alert sent)")
    assert line.endswith(" 7/20   14 s  (98 s in)")
    assert "\r" not in line and "\n" not in line
    assert len(line) < 100
    # the columns line up from one day to the next
    other = validated()
    other.seconds = 9
    assert format_day(other, 12, 20, 160).index("/20") == line.index("/20")


def test_tally_counts_outcomes_for_the_closing_line() -> None:
    days = [validated(), validated(drift="success"), quarantined(), validated(drift="success")]
    assert tally(days) == "3 validated (2 with a drift warning), 1 quarantined"
    assert tally([]) == "no days"


def test_plain_progress_prints_one_line_per_finished_day() -> None:
    said: list[str] = []
    with Progress(2, say=said.append, tty=False) as progress:
        progress.started("2026-11-12")
        progress.finished(validated())
        progress.started("2026-11-18")
        progress.finished(quarantined())
    assert len(said) == 2
    assert said[0].startswith("2026-11-12  validated") and " 1/2 " in said[0]
    assert said[1].startswith("2026-11-18  quarantined") and " 2/2 " in said[1]


def test_terminal_progress_keeps_the_day_lines_above_the_bar(capsys) -> None:
    said: list[str] = []
    with Progress(2, say=said.append, tty=True) as progress:
        progress.started("2026-11-12")
        progress.finished(validated())
    out = capsys.readouterr().out
    assert "2026-11-12  validated" in out and "1/2" in out
    assert said == []  # printed through rich, not twice


# -- the loop -----------------------------------------------------------------------------
def test_days_run_in_order_and_a_failed_day_does_not_stop_the_rest() -> None:
    days = [dt.date(2026, 11, 12) + dt.timedelta(days=i) for i in range(4)]
    ran: list[dt.date] = []
    events: list[dict] = []

    def run_day(day: dt.date) -> DayResult:
        ran.append(day)
        if day == days[1]:
            return quarantined(day.isoformat())
        if day == days[2]:
            raise RuntimeError("database is locked")
        return validated(day.isoformat())

    results = run_days(days, run_day, events.append)

    assert ran == days  # in order, each once: the drift check needs the previous day
    assert [r.day for r in results] == [d.isoformat() for d in days]
    assert [outcome(r) for r in results] == [
        "validated",
        "quarantined (3 problems, alert sent)",
        "error: RuntimeError: database is locked",
        "validated",
    ]
    assert [e["event"] for e in events] == ["start", "day"] * 4
    assert all(r.seconds >= 0 for r in results)
    # what crosses the pipe comes back whole
    assert DayResult.from_json(events[3]) == results[1]


def test_the_child_reports_each_day_on_the_results_pipe(monkeypatch, tmp_path) -> None:
    """``main`` (the process the demo starts) writes JSON lines to --results-fd."""
    import json
    import os

    monkeypatch.setattr(
        ingest_days, "airflow_run_day", lambda dag_id: lambda day: validated(day.isoformat())
    )
    read_fd, write_fd = os.pipe()
    assert ingest_days.main(["--results-fd", str(write_fd), "2026-11-12", "2026-11-13"]) == 0
    with os.fdopen(read_fd) as f:
        events = [json.loads(line) for line in f]
    assert [(e["event"], e["day"]) for e in events] == [
        ("start", "2026-11-12"),
        ("day", "2026-11-12"),
        ("start", "2026-11-13"),
        ("day", "2026-11-13"),
    ]
