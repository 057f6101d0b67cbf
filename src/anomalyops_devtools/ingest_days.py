"""``make run``'s history: one ingest DAG run per day, in order, all in one Python process.

The demo starts this module once (``python -m anomalyops_devtools.ingest_days DAY ...``):
Airflow, Great Expectations and TFDV are imported once, then each day runs as
``DAG.test(execution_date=day)`` — the tasks in this process, no executor, a real DagRun in
the metadata DB (it shows in the Airflow UI). Days run one after the other because each day's
drift check compares with the previous validated day; a failed day (the corrupt one, by
design) does not stop the next.

Airflow's own output goes to this process's stdout/stderr (the demo sends it to
``var/demo/backfill.log``); one JSON line per event goes to ``--results-fd`` for the demo to
show as a progress line a person can read (:func:`format_day`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from anomalyops_airflow.dag_ids import INGEST_DAG_ID


@dataclass
class DayResult:
    """What one day's run came to, JSON-able (it crosses a pipe)."""

    day: str
    state: str  # the DagRun's state: success / failed / error (the run itself raised)
    tasks: dict[str, str] = field(default_factory=dict)  # task_id -> state
    decision: str | None = None  # the gate's: pass / warn / fail (None: no gate report)
    problems: int = 0  # the gate's reasons
    alerts: dict[str, bool] = field(default_factory=dict)  # alert kind -> delivered
    seconds: float = 0.0
    error: str | None = None

    @classmethod
    def from_json(cls, data: dict) -> DayResult:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


# -- what a person reads -------------------------------------------------------------------
def outcome(result: DayResult) -> str:
    """``validated``, ``validated, drift warning sent``, ``quarantined (3 problems, alert
    sent)``, ``failed at ingest`` ..."""
    tasks = result.tasks
    if tasks.get("promote") == "success":
        drift = tasks.get("notify_drift")
        if drift == "success":
            return "validated, drift warning sent"
        if drift in ("failed", "upstream_failed"):
            return "validated, drift warning NOT sent"
        return "validated"
    if tasks.get("quarantine") in ("success", "failed"):
        n = result.problems
        sent = result.alerts.get("quarantine")
        alert = "alert sent" if sent else "ALERT NOT SENT" if sent is False else "no alert"
        return f"quarantined ({n} problem{'' if n == 1 else 's'}, {alert})"
    failed = [t for t, s in tasks.items() if s == "failed"]
    if failed:
        return f"failed at {failed[0]}"
    if result.error:
        return f"error: {result.error[:60]}"
    return result.state


def format_day(result: DayResult, index: int, total: int, elapsed: float) -> str:
    """``2026-11-18  quarantined (3 problems, alert sent)      7/20   14 s  (98 s in)``"""
    width = len(str(total))
    return (
        f"{result.day}  {outcome(result):<38} {index:>{width}}/{total}  "
        f"{result.seconds:3.0f} s  ({elapsed:.0f} s in)"
    )


def tally(results: Iterable[DayResult]) -> str:
    """``19 validated (6 with a drift warning), 1 quarantined``"""
    counts: dict[str, int] = {}
    drift = 0
    for r in results:
        text = outcome(r)
        kind = text.split(" (")[0].split(",")[0]
        counts[kind] = counts.get(kind, 0) + 1
        drift += text.startswith("validated, drift")
    parts = [f"{n} {kind}" for kind, n in counts.items()]
    if drift and parts:
        parts[0] = parts[0].replace("validated", f"validated ({drift} with a drift warning)", 1)
    return ", ".join(parts) or "no days"


class Progress:
    """One line per finished day; on a terminal also a rich progress bar under them."""

    def __init__(self, total: int, *, say: Callable[[str], None], tty: bool | None = None) -> None:
        import sys

        self.total, self.say, self.done = total, say, 0
        self.t0 = time.monotonic()
        self.tty = sys.stdout.isatty() if tty is None else tty
        self._bar = None
        if self.tty:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]\\[run][/bold] {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=True,
            )
            self._task = self._bar.add_task("starting Airflow ...", total=total)

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def started(self, day: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=f"ingesting {day}")

    def finished(self, result: DayResult) -> str:
        self.done += 1
        line = format_day(result, self.done, self.total, time.monotonic() - self.t0)
        if self._bar is not None:
            from rich.text import Text

            self._bar.console.print(Text.assemble(("[run]", "bold"), " ", line))
            self._bar.advance(self._task)
        else:
            self.say(line)
        return line


# -- the loop ------------------------------------------------------------------------------
def run_days(
    days: Sequence[dt.date],
    run_day: Callable[[dt.date], DayResult],
    emit: Callable[[dict], None],
) -> list[DayResult]:
    """Run ``days`` in order with ``run_day``; a day that raises is recorded, not fatal."""
    results = []
    for day in days:
        emit({"event": "start", "day": day.isoformat()})
        started = time.monotonic()
        try:
            result = run_day(day)
        except Exception as exc:  # the next day must still run (like --continue-on-failures)
            result = DayResult(
                day=day.isoformat(), state="error", error=f"{type(exc).__name__}: {exc}"
            )
        result.seconds = time.monotonic() - started
        results.append(result)
        emit({"event": "day", **asdict(result)})
    return results


def run_in_child(
    days: Sequence[dt.date],
    env: dict[str, str],
    log_path: Path,
    *,
    say: Callable[[str], None],
    cwd: Path | None = None,
) -> list[DayResult]:
    """Run ``days`` in a child process (:func:`main`), one progress line a day.

    The child imports Airflow, GX and TFDV once and runs each day as ``DAG.test``: real
    DagRuns in Airflow's DB (they show in the UI), no executor. Its output goes to
    ``log_path``; its per-day results come back on a pipe. Keep the DAG paused meanwhile, so
    the scheduler does not run the same days.
    """
    read_fd, write_fd = os.pipe()
    results: list[DayResult] = []
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "anomalyops_devtools.ingest_days",
                "--results-fd",
                str(write_fd),
                *(d.isoformat() for d in days),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            pass_fds=(write_fd,),
        )
        os.close(write_fd)
        with os.fdopen(read_fd) as events, Progress(len(days), say=say) as progress:
            for line in events:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if event.get("event") == "start":
                    progress.started(event["day"])
                elif event.get("event") == "day":
                    result = DayResult.from_json(event)
                    results.append(result)
                    progress.finished(result)
        code = proc.wait()
    if code != 0 or len(results) < len(days):
        tail = log_path.read_text(errors="replace").splitlines()[-30:]
        raise SystemExit(
            f"the backfill stopped after {len(results)} of {len(days)} days (exit {code}); "
            f"last lines of {log_path}:\n" + "\n".join(tail)
        )
    return results


def airflow_run_day(dag_id: str = INGEST_DAG_ID) -> Callable[[dt.date], DayResult]:
    """``run_day`` for :func:`run_days`: ``DAG.test`` of the ingest DAG (Airflow imported here)."""
    from anomalyops_airflow import compat

    # The users table: replacing a day's earlier run (a second `make run`) deletes its notes,
    # which reference users; the CLI maps it through the auth manager, a bare process must.
    with contextlib.suppress(ImportError):
        import airflow.providers.fab.auth_manager.models  # noqa: F401

    from anomalyops.lake import Lake
    from anomalyops.settings import get_settings
    from anomalyops.validation import report

    dag_folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
    bag = compat.dag_bag(os.path.join(dag_folder, f"{dag_id}.py"))
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise SystemExit(f"{dag_id} not found in {dag_folder}: {bag.import_errors}")

    _record_task_start_dates()

    def run_day(day: dt.date) -> DayResult:
        from airflow.models import DagRun
        from airflow.utils import timezone
        from airflow.utils.session import create_session

        logical = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
        started = timezone.utcnow()
        dr = compat.dag_test(dag, logical)
        # DAG.test starts the run "at" its logical date (weeks ago): the UI would show weeks.
        with create_session() as session:
            session.query(DagRun).filter(DagRun.id == dr.id).update(
                {DagRun.start_date: started}, synchronize_session=False
            )
        result = DayResult(
            day=day.isoformat(),
            state=str(dr.state),
            tasks={ti.task_id: str(ti.state) for ti in dr.get_task_instances()},
        )
        try:
            gate = report.read_gate_report(Lake(get_settings().lake_root), day)
        except Exception:  # no gate report: the day failed before validation
            return result
        result.decision = str(gate.decision.value)
        result.problems = len(gate.reasons)
        result.alerts = {a.kind: bool(a.sent) for a in gate.alerts}
        return result

    return run_day


def _record_task_start_dates() -> None:
    """Give each task run by ``DAG.test`` a start date, so the UI shows its duration.

    Airflow 2.10's ``DAG.test`` runs ``TaskInstance._run_raw_task`` directly, skipping the
    step that sets ``start_date`` (an executor's ``airflow tasks run`` does it): the task
    instances would have an end date but no start and no duration. This process only.
    """
    from anomalyops_airflow import compat

    if compat.AIRFLOW_3:
        return  # its tasks start through the Execution API, which records the start date

    from airflow.models.taskinstance import TaskInstance
    from airflow.utils import timezone

    original = TaskInstance._run_raw_task
    if getattr(original, "_anomalyops_start_date", False):
        return

    def _run_raw_task(self, *args, **kwargs):
        if self.start_date is None:
            self.start_date = timezone.utcnow()
            session = kwargs.get("session")
            if session is not None:  # _run_raw_task re-reads the row first
                session.merge(self)
                session.flush()
        return original(self, *args, **kwargs)

    _run_raw_task._anomalyops_start_date = True  # type: ignore[attr-defined]
    TaskInstance._run_raw_task = _run_raw_task  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anomalyops_devtools.ingest_days")
    parser.add_argument("days", nargs="+", type=dt.date.fromisoformat)
    parser.add_argument("--results-fd", type=int, required=True)
    parser.add_argument("--dag-id", default=INGEST_DAG_ID)
    args = parser.parse_args(argv)
    with os.fdopen(args.results_fd, "w", buffering=1) as out:

        def emit(event: dict) -> None:
            out.write(json.dumps(event) + "\n")

        results = run_days(args.days, airflow_run_day(args.dag_id), emit)
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
