"""Benchmark: the IR-built Airflow DAG against LocalDagRunner, on the same data.

Prints, for each data size (rows per validated day; the window has ``--days`` days):
- cold parse time of each DAG file (fresh interpreter; then as Airflow's DAG processor sees it,
  with Airflow's models already imported);
- trigger -> success wall time of the training pipeline under
  ``local``      LocalDagRunner in a fresh process (``python -m anomalyops_tfx.runners.local_runner``),
  ``dags-test``  ``airflow dags test`` (in-process, no scheduler),
  ``embedded``   a real scheduler: SequentialExecutor + SQLite,
  ``production`` a real scheduler configured as docker-compose.yml's: LocalExecutor, PostgreSQL
                 for Airflow and ML Metadata (so independent tasks run in parallel), the
                 TensorFlow preload plugin, ``scheduler_idle_sleep_time=0.2``,
  ``production-idle1s`` the same with Airflow's default idle sleep (1 s),
  ``production-nopreload`` LocalExecutor + PostgreSQL without the preload,
  ``celery``     the ``celery`` profile: CeleryExecutor, Redis (Debian's ``redis-server``) as
                 broker, PostgreSQL for Airflow, Celery's results and ML Metadata, two
                 ``airflow celery worker`` processes (concurrency 1 each, TensorFlow
                 preloaded in each) on loopback;
- wall time per component (Airflow task durations; ML Metadata execution times for LocalDagRunner).

Every mode gets its own pipeline root, copied from one set-up that registered the window's
earlier days as ExampleGen spans, so each timed run ingests the newest day and trains on the
whole window. PostgreSQL (Debian's ``postgresql`` package) is started on loopback as the
``postgres`` user for the production modes.

    .venv/bin/python bench/bench_orchestration.py --rows 10000,100000 --days 3

``--repeat N`` interleaves the modes (local, production, local, production, ...) and reports
each run against the ``LocalDagRunner`` run next to it, then the medians: on a shared machine
load shifts over minutes, and runs far apart in time are not comparable.

The compiled pipeline goes stale (and the Airflow runs stop at ``check_compiled_pipeline``) if
the pipeline code changes while the benchmark runs: in a shared working tree, run it from a
copy (``PYTHONPATH=<copy>/src:<copy>/tfx_components python <copy>/bench/bench_orchestration.py``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.helpers.airflow_cluster: Redis, processes, the driver
PY = sys.executable
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAG_ID = "anomalyops_train"
FIRST_DAY = dt.date(2026, 11, 1)
PG_PORT = 54329
MODES = (
    "local",
    "dags-test",
    "embedded",
    "production",
    "production-idle1s",
    "production-nopreload",
    "celery",
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def base_env(root: Path, rows: int, epochs: int, days: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ANOMALYOPS_"))}
    env.update(
        {
            "ANOMALYOPS_LAKE_ROOT": str(root.parent / "lake"),
            "ANOMALYOPS_PIPELINE_ROOT": str(root / "tfx"),
            "ANOMALYOPS_SERVING_MODEL_DIR": str(root / "serving"),
            "ANOMALYOPS_SIMULATOR__ROWS_PER_DAY": str(rows),
            "ANOMALYOPS_TRAINING__EPOCHS": str(epochs),
            "ANOMALYOPS_TRAINING__WINDOW_DAYS": str(days),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONWARNINGS": "ignore",
            # SequentialExecutor runs `airflow tasks run` from PATH.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    from anomalyops_airflow.env import airflow_env

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        env.update(airflow_env(root / "airflow"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return env


# --- set-up (one process per size: imports TensorFlow once) ---------------------------------


def setup_size(size_dir: Path, rows: int, days: int, modes: list[str]) -> None:
    """Write the lake, register the earlier days as spans, compile one IR per mode root."""
    from anomalyops.lake import Lake, Zone
    from anomalyops.settings import Settings
    from anomalyops.sources.simulator import SimulatorConfig, simulate_day
    from anomalyops.spec import load_spec
    from anomalyops_airflow import ir
    from anomalyops_airflow.launcher import no_ephemeral_sdist

    env = base_env(size_dir / "seed", rows, 3, days)
    os.environ.update({k: v for k, v in env.items() if k.startswith("ANOMALYOPS_")})
    settings = Settings()
    spec = load_spec(settings.feature_spec_path)
    lake = Lake(settings.lake_root)
    dates = [FIRST_DAY + dt.timedelta(days=i) for i in range(days)]
    for day in dates:
        lake.write_table(
            Zone.VALIDATED, day, simulate_day(spec, day, SimulatorConfig(rows_per_day=rows))
        )
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from anomalyops_tfx.pipeline import create_ingest_pipeline

    Path(settings.pipeline_root).mkdir(parents=True, exist_ok=True)
    with no_ephemeral_sdist():
        for day in dates[:-1]:
            LocalDagRunner().run(create_ingest_pipeline(settings, spec, day))
    for key in modes:
        mode_root = size_dir / key.replace("#", "-")
        menv = base_env(mode_root, rows, EPOCHS, days)
        os.environ.update({k: v for k, v in menv.items() if k.startswith("ANOMALYOPS_")})
        if uses_postgres(key):
            # ML Metadata on the PostgreSQL server, as docker-compose.yml has it (SQLite allows
            # one writer, so the DAG would run one task at a time): register the spans there.
            os.environ["ANOMALYOPS_TRAINING__METADATA_DB_URL"] = mlmd_url(rows, key)
            subprocess.run(
                [
                    "su",
                    "postgres",
                    "-c",
                    f"createdb -h 127.0.0.1 -p {PG_PORT} {mlmd_db(rows, key)}",
                ],
                check=True,
            )
            mode_settings = Settings()
            Path(mode_settings.pipeline_root).mkdir(parents=True, exist_ok=True)
            with no_ephemeral_sdist():
                for day in dates[:-1]:
                    LocalDagRunner().run(create_ingest_pipeline(mode_settings, spec, day))
        else:
            os.environ.pop("ANOMALYOPS_TRAINING__METADATA_DB_URL", None)
            shutil.copytree(settings.pipeline_root, mode_root / "tfx")
        ir.compile_project_pipeline(Settings())


def uses_postgres(key: str) -> bool:
    return key.startswith(("production", "celery"))


def mlmd_db(rows: int, key: str) -> str:
    return f"mlmd_{rows}_{key.replace('-', '_').replace('#', '_')}"


def mlmd_url(rows: int, key: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{PG_PORT}/{mlmd_db(rows, key)}"


# --- timing one mode (a subprocess with the mode's environment) -----------------------------


def run_cmd(cmd: list[str], env: dict, logfile: Path, timeout: float = 3600) -> float:
    start = time.perf_counter()
    with logfile.open("w") as fh:
        subprocess.run(
            cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=True, timeout=timeout
        )
    return time.perf_counter() - start


def mlmd_durations(env: dict) -> dict[str, float]:
    """Per-node execution wall time recorded in ML Metadata (for LocalDagRunner)."""
    import sqlite3

    db = Path(env["ANOMALYOPS_PIPELINE_ROOT"]) / "metadata.sqlite"
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT c.name, e.create_time_since_epoch, e.last_update_time_since_epoch "
        "FROM Execution e JOIN Association a ON a.execution_id = e.id "
        "JOIN Context c ON c.id = a.context_id JOIN Type t ON t.id = c.type_id "
        "WHERE t.name = 'node' ORDER BY e.id"
    ).fetchall()
    latest: dict[str, float] = {}
    for name, start, end in rows:
        latest[name.split(".", 1)[-1]] = (end - start) / 1000
    return latest


def airflow_driver(mode: str) -> None:
    """Inside the mode's environment: start a scheduler (and for ``celery`` two workers),
    trigger, wait, print JSON results."""
    from tests.helpers.airflow_cluster import HOSTNAME_VAR, free_port, start, stop, trigger_and_wait

    home = Path(os.environ["AIRFLOW_HOME"])
    env = dict(os.environ)
    procs = []
    try:
        if mode == "celery":
            for i in (1, 2):
                wenv = {
                    **env,
                    HOSTNAME_VAR: f"celery-worker-{i}",
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                    # The workers fork the tasks here: they preload TensorFlow/TFX.
                    "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
                    "ANOMALYOPS_ORCHESTRATION__PRELOAD_TENSORFLOW": "true",
                }
                cmd = [AIRFLOW, "celery", "worker", "--concurrency", "1"]
                cmd += ["--celery-hostname", f"celery-worker-{i}@%h"]
                procs.append(start(cmd, wenv, home / f"worker{i}.out"))
        procs.append(start([AIRFLOW, "scheduler"], env, home / "scheduler.out"))

        def dead() -> str | None:
            gone = [p.args[1] for p in procs if p.poll() is not None]
            return f"airflow {', '.join(gone)} (see {home}/*.out)" if gone else None

        result = trigger_and_wait(DAG_ID, f"bench_{mode}", 7000, dead)
    finally:
        stop(procs)
    print(json.dumps(result))


def run_mode(
    key: str,
    size_dir: Path,
    rows: int,
    days: int,
    pg_url: str | None,
    redis_url: str | None = None,
) -> dict:
    """Time one run; ``key`` is a mode, or ``mode#n`` for the n-th repetition of it."""
    mode = key.split("#")[0]
    root = size_dir / key.replace("#", "-")
    env = base_env(root, rows, EPOCHS, days)
    logf = root / "run.log"
    if mode == "local":
        wall = run_cmd([PY, "-m", "anomalyops_tfx.runners.local_runner"], env, logf)
        return {"state": "success", "wall": wall, "tasks": mlmd_durations(env)}
    if uses_postgres(mode):
        if pg_url is None:
            raise RuntimeError("PostgreSQL is not available")
        db = f"bench_{rows}_{key.replace('-', '_').replace('#', '_')}"
        subprocess.run(
            ["su", "postgres", "-c", f"createdb -h 127.0.0.1 -p {PG_PORT} {db}"], check=True
        )
        env.update(
            {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{pg_url}/{db}",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "ANOMALYOPS_TRAINING__METADATA_DB_URL": mlmd_url(rows, key),
            }
        )
        if mode == "celery":
            if redis_url is None:
                raise RuntimeError("redis-server is not available")
            env.update(
                {
                    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                    "AIRFLOW__CELERY__BROKER_URL": redis_url,
                    "AIRFLOW__CELERY__RESULT_BACKEND": "db+postgresql://"
                    + f"{pg_url.split('://', 1)[1]}/{db}",
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.helpers.airflow_cluster.hostname",
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
                }
            )
        if mode not in ("production-nopreload", "celery"):
            env["AIRFLOW__CORE__LAZY_LOAD_PLUGINS"] = "False"
            env["ANOMALYOPS_ORCHESTRATION__PRELOAD_TENSORFLOW"] = "true"
        if mode != "production-idle1s":
            # As in docker-compose.yml: the scheduler sleeps up to this long when a loop found
            # nothing to do, i.e. after most task ends.
            env["AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"] = "0.2"
    # The ingest DAG (catch-up from start_date) must not compete with the measured run.
    env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "True"
    run_cmd([AIRFLOW, "db", "migrate"], env, root / "migrate.log")
    if mode == "dags-test":
        wall = run_cmd([AIRFLOW, "dags", "test", DAG_ID, "2026-12-01"], env, logf)
        out = subprocess.run(
            [PY, __file__, "--collect", DAG_ID], env=env, capture_output=True, text=True, check=True
        )
        return {"state": "see log", "wall": wall, **json.loads(out.stdout.strip().splitlines()[-1])}
    out = subprocess.run(
        [PY, __file__, "--driver", mode], env=env, capture_output=True, text=True, timeout=7200
    )
    (root / "driver.err").write_text(out.stderr)
    if out.returncode != 0:
        raise RuntimeError(f"{key} driver failed; see {root / 'driver.err'}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def collect_tasks(dag_id: str) -> None:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as s:
        dr = s.query(DagRun).filter_by(dag_id=dag_id).order_by(DagRun.id.desc()).first()
        tasks = {
            ti.task_id: {
                "duration": ti.duration
                or (
                    (ti.end_date - ti.start_date).total_seconds()
                    if ti.start_date and ti.end_date
                    else None
                ),
                "start": ti.start_date.timestamp() if ti.start_date else None,
            }
            for ti in dr.get_task_instances(session=s)
        }
        print(json.dumps({"state": dr.state, "tasks": tasks}))


# --- parse times ---------------------------------------------------------------------------

PARSE_PROBE = """
import sys, time, runpy
t0 = time.perf_counter()
import airflow
{warm}
t = time.perf_counter()
runpy.run_path({path!r})
print(round(time.perf_counter() - t, 3), round(t - t0, 3))
"""
WARM = "from airflow.models import DAG\nfrom airflow.operators.python import PythonOperator\nimport airflow.datasets\nimport anomalyops.settings"


def parse_times(env: dict) -> dict[str, dict[str, float]]:
    result = {}
    for path in sorted((REPO / "dags").glob("*.py")):
        row = {}
        for label, warm in (("cold", ""), ("dag_processor", WARM)):
            samples = []
            for _ in range(3):
                out = subprocess.run(
                    [PY, "-W", "ignore", "-c", PARSE_PROBE.format(warm=warm, path=str(path))],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                samples.append(float(out.stdout.split()[-2]))
            row[label] = min(samples)
        result[path.name] = row
    return result


# --- PostgreSQL on loopback ------------------------------------------------------------------


def start_postgres(workdir: Path) -> str | None:
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not bins:
        log("PostgreSQL not installed (apt-get install -y postgresql): production modes skipped")
        return None
    pg_bin = bins[-1]
    data = workdir / "pgdata"
    data.mkdir(parents=True, exist_ok=True)
    shutil.chown(data, "postgres", "postgres")
    shutil.chown(workdir, "postgres", "postgres")

    def su(cmd: str) -> None:
        subprocess.run(["su", "postgres", "-c", cmd], check=True, capture_output=True)

    su(f"{pg_bin}/initdb -D {data} --auth=trust -U postgres")
    su(
        f"{pg_bin}/pg_ctl -D {data} -l {data}/log -w -o '-p {PG_PORT} -k {data} "
        f"-c listen_addresses=127.0.0.1 -c max_connections=200' start"
    )
    return f"postgresql+psycopg2://postgres@127.0.0.1:{PG_PORT}"


def stop_postgres(workdir: Path) -> None:
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    subprocess.run(
        ["su", "postgres", "-c", f"{bins[-1]}/pg_ctl -D {workdir / 'pgdata'} -m fast stop"],
        check=False,
        capture_output=True,
    )


# --- report ----------------------------------------------------------------------------------


def report(results: dict, parse: dict) -> None:
    print("\n## DAG file parse time (s; best of 3)")
    print(f"{'file':28} {'cold':>8} {'dag-processor':>14}")
    for name, row in parse.items():
        print(f"{name:28} {row['cold']:8.3f} {row['dag_processor']:14.3f}")
    for rows, by_mode in results.items():
        print(
            f"\n## {rows} rows/day x {DAYS} days ({rows * DAYS} rows in the window), {EPOCHS} epochs"
        )
        print(f"{'run':24} {'state':8} {'wall s':>8} {'x local':>8}")
        for key, r in by_mode.items():
            if "error" in r:
                print(f"{key:24} {'ERROR':8} {r['error']}")
                continue
            # Against the LocalDagRunner run of the same repetition: runs next to each other in
            # time see the same machine load.
            rep = key.partition("#")[2]
            local = by_mode.get(f"local#{rep}" if rep else "local", {}).get("wall")
            ratio = f"{r['wall'] / local:8.2f}" if local else "       -"
            print(f"{key:24} {r['state']!s:8} {r['wall']:8.1f} {ratio}")
        walls: dict[str, list[float]] = {}
        for key, r in by_mode.items():
            if "wall" in r and r.get("state") in ("success", "see log"):
                walls.setdefault(key.split("#")[0], []).append(r["wall"])
        if any(len(w) > 1 for w in walls.values()):
            local_med = statistics.median(walls["local"]) if "local" in walls else None
            print(f"\n{'mode (median)':24} {'runs':>8} {'wall s':>8} {'x local':>8}")
            for mode, w in walls.items():
                med = statistics.median(w)
                ratio = f"{med / local_med:8.2f}" if local_med else "       -"
                print(f"{mode:24} {len(w):8d} {med:8.1f} {ratio}")
        # In the order the first scheduler-run mode started them (else alphabetical).
        starts: dict[str, float] = {}
        for r in by_mode.values():
            for t, v in r.get("tasks", {}).items():
                if isinstance(v, dict) and v.get("start") and t not in starts:
                    starts[t] = v["start"]
        nodes = sorted(
            {t for r in by_mode.values() for t in r.get("tasks", {})},
            key=lambda t: (starts.get(t, float("inf")), t),
        )
        modes = [m for m in by_mode if "tasks" in by_mode[m]]
        print("\nper component (s): " + " | ".join(modes))
        for t in nodes:
            cells = []
            for m in modes:
                v = by_mode[m]["tasks"].get(t)
                v = v.get("duration") if isinstance(v, dict) else v
                cells.append(f"{v:8.1f}" if isinstance(v, (int, float)) else "       -")
            print(f"{t:32} " + " ".join(cells))


def main() -> int:
    global EPOCHS, DAYS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", default="10000,100000", help="rows per day, comma-separated")
    p.add_argument("--days", type=int, default=3, help="validated days in the training window")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every mode this many times, interleaved (local, production, local, ...)",
    )
    p.add_argument("--workdir", help="default: a new temp dir (kept, for the logs)")
    p.add_argument("--driver", help=argparse.SUPPRESS)
    p.add_argument("--collect", help=argparse.SUPPRESS)
    p.add_argument("--setup", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    EPOCHS, DAYS = args.epochs, args.days
    if args.driver:
        airflow_driver(args.driver)
        return 0
    if args.collect:
        collect_tasks(args.collect)
        return 0
    modes = [m for m in args.modes.split(",") if m]
    if args.repeat > 1 and not args.setup:
        modes = [f"{m}#{r}" for r in range(1, args.repeat + 1) for m in modes]
    if args.setup:
        setup_size(Path(args.setup[0]), int(args.setup[1]), DAYS, args.setup[2].split(","))
        return 0

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-orch-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"workdir {workdir}")
    pg_url = start_postgres(workdir) if any(uses_postgres(m) for m in modes) else None
    redis = None
    if any(m.startswith("celery") for m in modes):
        from tests.helpers.airflow_cluster import RedisServer

        try:
            redis = RedisServer().__enter__()
        except (FileNotFoundError, RuntimeError) as exc:
            log(f"{exc}: celery mode skipped")
    results: dict[int, dict] = {}
    try:
        parse: dict = {}
        for rows in [int(r) for r in args.rows.split(",")]:
            size_dir = workdir / f"rows{rows}"
            log(f"set-up {rows} rows/day")
            subprocess.run(
                [
                    PY,
                    __file__,
                    "--days",
                    str(DAYS),
                    "--epochs",
                    str(EPOCHS),
                    "--setup",
                    str(size_dir),
                    str(rows),
                    ",".join(modes),
                ],
                check=True,
                stdout=(workdir / f"setup{rows}.log").open("w"),
                stderr=subprocess.STDOUT,
            )
            results[rows] = {}
            if not parse:  # with a compiled pipeline, so the DAG has all its tasks
                parse = parse_times(
                    base_env(size_dir / modes[0].replace("#", "-"), rows, EPOCHS, DAYS)
                )
                log(f"parse times {parse}")
            for mode in modes:
                log(f"{rows} rows/day: {mode}")
                try:
                    results[rows][mode] = run_mode(
                        mode, size_dir, rows, DAYS, pg_url, redis.url if redis else None
                    )
                except Exception as exc:  # report and go on with the other modes
                    results[rows][mode] = {"error": str(exc)}
                log(f"  -> {results[rows][mode].get('state')} {results[rows][mode].get('wall')}")
                (workdir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    finally:
        if redis:
            redis.__exit__(None, None, None)
        if pg_url:
            stop_postgres(workdir)
    report(results, parse)
    return 0


EPOCHS = 3
DAYS = 3

if __name__ == "__main__":
    sys.exit(main())
