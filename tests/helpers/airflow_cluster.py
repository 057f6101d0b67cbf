"""Airflow as separate processes on loopback, for the tests and benchmarks that run the real
training DAG under a real scheduler: a throwaway Redis, validated days in a lake, processes
started in their own process groups (so stopping one stops its children), and the driver that
unpauses, triggers and waits for a DAG run.

The driver imports Airflow, whose configuration is read at import time, so it runs in a process
with the cluster's environment: ``python -m tests.helpers.airflow_cluster DAG_ID RUN_ID TIMEOUT
[PID ...]`` prints the run's outcome as one JSON line (the PIDs are processes that must stay
alive meanwhile: the scheduler, the workers). ``bench/bench_orchestration.py`` calls
:func:`trigger_and_wait` from its own driver process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

HOSTNAME_VAR = "TEST_WORKER_HOSTNAME"
"""With ``AIRFLOW__CORE__HOSTNAME_CALLABLE=tests.helpers.airflow_cluster.hostname``, the host
name Airflow records for a process (``TaskInstance.hostname``): two workers on one machine
tell their tasks apart by it."""


def hostname() -> str:
    return os.environ.get(HOSTNAME_VAR) or socket.getfqdn()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- processes -------------------------------------------------------------------------------


def start(cmd: Sequence[str], env: dict[str, str], log: Path, cwd: Path | None = None):
    """Start ``cmd`` in a new session (its own process group), output to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            list(cmd),
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop(procs: Iterable[subprocess.Popen], grace: float = 30.0) -> None:
    """SIGTERM each process group, wait up to ``grace`` seconds, then SIGKILL what is left.

    A Celery worker's warm shutdown waits for its running task; the grace bounds that."""
    procs = list(procs)
    for p in procs:
        _signal_group(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(max(0.1, deadline - time.monotonic()))
    for p in procs:  # the group too: forked task processes can outlive their parent
        _signal_group(p, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(10)


def _signal_group(p: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, sig)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie - exited, not yet reaped - counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return False


# --- Redis (Debian's redis-server) -----------------------------------------------------------


class RedisServer:
    """``redis-server`` on 127.0.0.1 and a free port, no persistence, in its own directory."""

    def __init__(self, binary: str | None = None):
        self.binary = binary or shutil.which("redis-server")
        self.dir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> RedisServer:
        if not self.binary:
            raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
        self.dir = Path(tempfile.mkdtemp(prefix="anomalyops-redis-"))
        self.port = free_port()
        self.proc = start(
            [
                self.binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.dir),
                "--daemonize", "no",
                "--protected-mode", "yes",
            ],
            dict(os.environ),
            self.dir / "redis.log",
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                self.__exit__(None, None, None)
                raise RuntimeError(f"redis-server did not start:\n{log}")
            time.sleep(0.05)
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            stop([self.proc], grace=10)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


# --- data ------------------------------------------------------------------------------------


def write_validated_days(
    lake_root: str | Path, dates: Sequence[dt.date], rows: int, spec_path: Path | None = None
) -> None:
    """Simulated days straight into the lake's validated zone (as the daily gate leaves them)."""
    from anomalyops.lake import Lake, Zone
    from anomalyops.settings import Settings
    from anomalyops.sources.simulator import SimulatorConfig, simulate_day
    from anomalyops.spec import load_spec

    spec = load_spec(spec_path or Settings().feature_spec_path)
    lake = Lake(str(lake_root))
    for day in dates:
        lake.write_table(
            Zone.VALIDATED, day, simulate_day(spec, day, SimulatorConfig(rows_per_day=rows))
        )


def create_database(postgres_url: str, name: str) -> None:
    """``CREATE DATABASE name`` on the server of ``postgresql://user@host:port``."""
    import psycopg2

    con = psycopg2.connect(f"{postgres_url}/postgres")
    try:
        con.autocommit = True
        con.cursor().execute(f'CREATE DATABASE "{name}"')
    finally:
        con.close()


# --- the driver (inside the cluster's environment) ------------------------------------------


def trigger_and_wait(
    dag_id: str,
    run_id: str,
    timeout: float,
    is_alive: Callable[[], str | None] = lambda: None,
) -> dict:
    """Unpause ``dag_id`` once the scheduler registered it, trigger ``run_id``, wait for its end.

    ``is_alive`` returns the name of a process that died (then this raises) or None. Returns
    the run's state, ``wall`` (trigger to end), ``registered_after`` (start to DAG registered),
    and per task its state, try, duration, start/end (epoch seconds) and hostname."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.models import DagModel, DagRun
    from airflow.utils.session import create_session

    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout

    def check() -> None:
        dead = is_alive()
        if dead:
            raise RuntimeError(f"{dead} exited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{dag_id} {run_id}: not done after {timeout:.0f} s")

    while True:
        with create_session() as s:
            dm = s.get(DagModel, dag_id)
            if dm is not None:
                dm.is_paused = False
                break
        check()
        time.sleep(0.5)
    registered = time.perf_counter() - t0
    t_trigger = time.perf_counter()
    trigger_dag(dag_id, run_id=run_id)
    while True:
        with create_session() as s:
            dr = s.query(DagRun).filter_by(dag_id=dag_id, run_id=run_id).one()
            if dr.state in ("success", "failed"):
                tasks = {
                    ti.task_id: {
                        "state": ti.state,
                        "try": ti.try_number,
                        "duration": ti.duration,
                        "start": ti.start_date.timestamp() if ti.start_date else None,
                        "end": ti.end_date.timestamp() if ti.end_date else None,
                        "hostname": ti.hostname,
                    }
                    for ti in dr.get_task_instances(session=s)
                }
                state = dr.state
                break
        check()
        time.sleep(0.5)
    return {
        "state": state,
        "wall": time.perf_counter() - t_trigger,
        "registered_after": registered,
        "tasks": tasks,
    }


def main(argv: Sequence[str]) -> int:
    dag_id, run_id, timeout, *pids = argv

    def is_alive() -> str | None:
        dead = [p for p in pids if not alive(int(p))]
        return f"process {', '.join(dead)}" if dead else None

    result = trigger_and_wait(dag_id, run_id, float(timeout), is_alive)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
