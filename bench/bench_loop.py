"""Benchmark the daily loop: what a day costs to ingest and gate, and what a retrain costs
against the floor of the work it does.

For each size (rows a day), in its own process, Airflow home, lake and API:
1. ``window`` days (the default training window, ``ANOMALYOPS_TRAINING__WINDOW_DAYS``) of the
   simulator go through the ingest DAG (``DAG.test`` in this process: land, ingest, the GX +
   TFDV gate, promote); each day is timed.
2. The training DAG runs once over those days (warm-up: it registers the earlier days as
   ExampleGen spans and serves the first version).
3. The next day is ingested, and the **daily cycle** is timed: trigger the training DAG →
   the scoring API (a uvicorn process on loopback; the DAG's notifier reloads it) answers
   ``GET /v1/models/active`` with the new version. Per-task durations come from Airflow's
   records of that run.
4. The **floor**: in this same process, TensorFlow already imported, the same validated rows
   the new version was trained on are read from the lake, z-scored, fitted (the same
   autoencoder + detector tables, the same training settings), wrapped in the same serving
   module and exported as a SavedModel. Its wall time is what the retrain would cost with no
   orchestration, no TFX and no Beam; the cycle is printed as a multiple of it.

The training DAG runs through ``DAG.test`` in the process that already imported TensorFlow
for the gate: what the production configuration's preload gives each task (docker-compose's
LocalExecutor), without the scheduler's ≈ 0.5 s per edge (``bench_orchestration.py``
measures that).

    .venv/bin/python bench/bench_loop.py                  # 1,440 and 100,000 rows a day
    .venv/bin/python bench/bench_loop.py --rows 1440      # one size
    .venv/bin/python bench/bench_loop.py --rows 1000000 --warmup-only   # the window's memory

Each size also prints the peak resident memory of the process that ran everything.

Writes var/bench/bench_loop.json. Needs nothing beyond the project's environment.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow_hotfix  # noqa: F401  (CVE-2023-47248) before this process reads any Parquet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
START = dt.date(2026, 10, 1)

# Issue 14's goals, printed beside the figures.
GOAL_INGEST_S = {1440: 3.0, 1_000_000: 20.0}
GOAL_CYCLE_X = {1440: 3.0, 100_000: 2.0}


def at(day: dt.date, hour: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.timezone.utc)


def peak_rss_gib() -> float:
    """This process's peak resident memory so far (everything ran in it: DAG.test, Beam
    in-memory, the Trainer), in GiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def child(rows: int, work: Path, warmup_only: bool = False) -> dict:
    """One size, in this process: Airflow must be configured before it is imported."""
    from drift_replay import _free_port, _newest_version, _start_api

    from anomalyops_airflow.env import airflow_env
    from anomalyops_devtools.mail_sink import MailSink

    sink = MailSink(work / "mail", port=_free_port()).start()
    os.environ.update(
        {
            "ANOMALYOPS_START_DATE": START.isoformat(),
            "ANOMALYOPS_LAKE_ROOT": str(work / "lake"),
            "ANOMALYOPS_PIPELINE_ROOT": str(work / "tfx"),
            "ANOMALYOPS_SERVING_MODEL_DIR": str(work / "serving"),
            "ANOMALYOPS_SIMULATOR__SCENARIO": "none",
            "ANOMALYOPS_SIMULATOR__ROWS_PER_DAY": str(rows),
            "ANOMALYOPS_SMTP__HOST": "127.0.0.1",
            "ANOMALYOPS_SMTP__PORT": str(sink.port),
        }
    )
    widen_spec_for(rows, work)
    api = _start_api(work)
    os.environ["ANOMALYOPS_API_URL"] = api["url"]
    os.environ["ANOMALYOPS_API_ADMIN_KEY"] = api["admin_key"]
    os.environ.update(airflow_env(work / "airflow"))
    cli = str(Path(sys.executable).parent / "anomalyops")
    subprocess.run([cli, "compile-pipeline"], check=True, stdout=subprocess.DEVNULL)

    from airflow.utils import db

    from anomalyops.settings import Settings
    from anomalyops_airflow.compat import dag_bag, dag_test

    settings = Settings()
    window = settings.training.window_days
    db.initdb(load_connections=False)
    bag = dag_bag(ROOT / "dags")
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    ingest_dag, train_dag = bag.dags["anomalyops_ingest"], bag.dags["anomalyops_train"]

    def stop() -> None:
        sink.stop()
        api["proc"].terminate()
        api["proc"].wait(timeout=30)

    def ingest(day: dt.date) -> float:
        started = time.perf_counter()
        run = dag_test(ingest_dag, at(day))
        if str(run.state) != "success":
            raise RuntimeError(f"ingest of {day} ended {run.state}; see {work / 'airflow'}")
        return time.perf_counter() - started

    days = [START + dt.timedelta(days=i) for i in range(window + 1)]
    ingest_s = [ingest(day) for day in days[:window]]
    log(f"{rows} rows/day: ingested {window} days, {ingest_s[0]:.1f} s then {ingest_s[1:]}")

    started = time.perf_counter()
    first = dag_test(train_dag, at(days[window - 1], 1))
    warmup_s = time.perf_counter() - started
    v1 = _newest_version(work / "serving")
    if str(first.state) != "success" or v1 is None:
        raise RuntimeError(f"the warm-up training run ended {first.state}; see {work}")
    log(f"{rows} rows/day: warm-up run {warmup_s:.0f} s, version {v1}")
    summary = {
        "rows_per_day": rows,
        "window_days": window,
        "ingest_first_day_s": round(ingest_s[0], 2),
        "ingest_day_s": [round(s, 2) for s in ingest_s[1:]],
        "ingest_day_median_s": round(statistics.median(ingest_s[1:]), 2),
        "warmup_run_s": round(warmup_s, 1),
        "warmup_peak_rss_gib": round(peak_rss_gib(), 2),
    }
    if warmup_only:
        stop()
        return summary

    ingest_s.append(ingest(days[window]))
    started, started_at = time.perf_counter(), dt.datetime.now(dt.timezone.utc)
    run = dag_test(train_dag, at(days[window], 1))
    version = wait_served(api, v1)
    cycle_s = time.perf_counter() - started
    if str(run.state) != "success":
        raise RuntimeError(f"the timed training run ended {run.state}; see {work}")
    tasks = task_durations(run, started_at)
    log(f"{rows} rows/day: daily cycle {cycle_s:.0f} s, version {version}")

    floor = in_process_floor(settings, work / "serving" / str(version), work / "floor")
    stop()
    return {
        **summary,
        "ingest_day_s": [round(s, 2) for s in ingest_s[1:]],
        "ingest_day_median_s": round(statistics.median(ingest_s[1:]), 2),
        "cycle_s": round(cycle_s, 1),
        "served_version": version,
        "tasks_s": tasks,
        **floor,
        "cycle_over_floor": round(cycle_s / floor["floor_s"], 2),
        "peak_rss_gib": round(peak_rss_gib(), 2),
    }


def widen_spec_for(rows: int, work: Path) -> None:
    """Above the demo spec's ``rows_per_day.max`` (a data contract: the gate quarantines a day
    beyond it), run with a copy whose bound admits ``rows``, as a user at that size would."""
    import yaml

    from anomalyops.settings import Settings

    source = Path(Settings().feature_spec_path)
    spec = yaml.safe_load(source.read_text())
    bounds = spec.get("rows_per_day") or {}
    if bounds.get("max") is None or rows <= bounds["max"]:
        return
    spec["rows_per_day"] = {**bounds, "max": rows * 2}
    copy = work / "feature_spec.yaml"
    copy.write_text(yaml.safe_dump(spec, sort_keys=False))
    os.environ["ANOMALYOPS_FEATURE_SPEC_PATH"] = str(copy)
    log(f"{rows} rows/day: spec copy with rows_per_day.max {rows * 2} ({copy})")


def wait_served(api: dict, previous: int, timeout: float = 300.0) -> int:
    """Block until the API serves a version newer than ``previous``; return it."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            reply = httpx.get(
                f"{api['url']}/v1/models/active", headers={"X-API-Key": api["key"]}, timeout=10
            )
            if reply.status_code == 200 and reply.json()["version"] > previous:
                return int(reply.json()["version"])
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the API served no version after {previous} within {timeout:g} s")


def task_durations(run, started: dt.datetime) -> dict[str, float]:
    """Seconds per task of a finished ``DAG.test`` run, in the order they ended.

    ``DAG.test`` runs one task at a time and records only end times, so a task's time is the
    gap since the previous task (the first one's since ``started``): Airflow's own share is in
    these figures too.
    """
    from airflow.utils.session import create_session

    with create_session() as session:
        ends = sorted(
            (ti.end_date, ti.task_id)
            for ti in run.get_task_instances(session=session)
            if ti.end_date
        )
    durations, previous = {}, started
    for end, task_id in ends:
        durations[task_id] = round((end - previous).total_seconds(), 2)
        previous = end
    return durations


def in_process_floor(settings, version_dir: Path, out: Path) -> dict:
    """Fit and export the served version's model again, with no orchestration: the floor."""
    import numpy as np
    import pandas as pd
    import tensorflow as tf

    from anomalyops.lake import Lake, Zone
    from anomalyops.spec import load_spec
    from anomalyops_tfx import detector
    from anomalyops_tfx import model as model_lib
    from anomalyops_tfx.trainer import _ensemble_scores, fit_ensemble, training_config

    meta = json.loads((version_dir / "anomalyops_model.json").read_text())
    first, last = (dt.date.fromisoformat(d) for d in meta["training_spans"])
    spec = load_spec(settings.feature_spec_path)
    names = list(spec.model_columns)
    cfg = training_config(settings)
    lake = Lake(settings.lake_root)

    started = time.perf_counter()
    days = [d for d in lake.partitions(Zone.VALIDATED) if first <= d <= last]
    frame = pd.concat([lake.read_table(Zone.VALIDATED, d)[names] for d in days])
    x = frame.to_numpy(np.float32)
    mean, std = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
    std[std == 0] = 1.0
    z = np.nan_to_num((x - mean) / std).astype(np.float32)
    rng = np.random.default_rng(cfg["seed"])
    is_eval = rng.random(len(z)) < settings.training.eval_fraction
    x_train, x_norm = detector.split_for_normalisation(z[~is_eval], seed=cfg["seed"])
    model, tables, _, _ = fit_ensemble(x_train, x_norm, z[is_eval], cfg)

    class ZScore(tf.Module):
        """The Transform layer's stand-in: the same z-score, no imputation graph."""

        def __call__(self, columns):
            return {
                n: (tf.reshape(columns[n], [-1]) - float(mean[i])) / float(std[i])
                for i, n in enumerate(names)
            }

    raw_spec = {n: tf.io.FixedLenFeature([], tf.float32) for n in names}
    module = model_lib.make_serving_module(
        model, ZScore(), raw_spec, names, float("inf"), tables=tables
    )
    threshold = float(np.quantile(_ensemble_scores(tables, model, x_train), 0.99))
    module.threshold.assign(threshold)
    model_lib.export(module, str(out))
    floor_s = time.perf_counter() - started
    return {"floor_s": round(floor_s, 1), "floor_rows": len(z), "window_days_read": len(days)}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def report(results: list[dict]) -> None:
    print("\n## The daily loop (default window; DAG.test with TensorFlow preloaded)")
    for r in results:
        rows = r["rows_per_day"]
        print(f"\n### {rows:,} rows a day x {r['window_days']} days")
        goal = GOAL_INGEST_S.get(rows)
        goal_txt = f" (goal <= {goal:g} s)" if goal else ""
        print(
            f"ingest + gate a day      {r['ingest_day_median_s']:8.2f} s median of "
            f"{len(r['ingest_day_s'])} days{goal_txt}; the first day {r['ingest_first_day_s']:.1f} s "
            "(imports)"
        )
        print(
            f"warm-up training run     {r['warmup_run_s']:8.1f} s (registers the earlier spans); "
            f"peak RSS {r['warmup_peak_rss_gib']:.1f} GiB"
        )
        if "cycle_s" not in r:
            continue
        print(f"trigger -> new version   {r['cycle_s']:8.1f} s")
        print(
            f"in-process floor         {r['floor_s']:8.1f} s ({r['floor_rows']:,} rows, "
            f"{r['window_days_read']} days)"
        )
        goal = GOAL_CYCLE_X.get(rows)
        verdict = ""
        if goal:
            verdict = (
                f" (goal <= {goal:g}x: {'met' if r['cycle_over_floor'] <= goal else 'NOT met'})"
            )
        print(f"cycle / floor            {r['cycle_over_floor']:8.2f} x{verdict}")
        print(
            f"peak RSS                 {r['peak_rss_gib']:8.1f} GiB (this process, the API apart)"
        )
        print("per task of the timed run (s):")
        for task, seconds in r["tasks_s"].items():
            print(f"  {task:36} {seconds:8.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", default="1440,100000", help="rows a day, comma-separated")
    p.add_argument("--workdir", help="default: a new temp dir (kept, for the logs)")
    p.add_argument(
        "--warmup-only",
        action="store_true",
        help="stop after the first training run: the window's size and memory, no cycle or floor",
    )
    p.add_argument("--child", nargs=2, metavar=("ROWS", "DIR"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        result = child(int(args.child[0]), Path(args.child[1]), args.warmup_only)
        print(json.dumps(result), flush=True)
        return 0
    try:
        sizes = [int(r) for r in args.rows.split(",") if r]
    except ValueError:
        p.error(f"--rows must be comma-separated integers, got {args.rows!r}")
    if not sizes or min(sizes) < 1:
        p.error("--rows needs at least one positive size")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-loop-"))
    log(f"workdir {workdir}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ANOMALYOPS_"))}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
    results = []
    for rows in sizes:
        work = workdir / f"rows{rows}"
        work.mkdir(parents=True, exist_ok=True)
        with (work / "child.log").open("w") as errlog:
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(rows), str(work)]
                + (["--warmup-only"] if args.warmup_only else []),
                env=env,
                stdout=subprocess.PIPE,
                stderr=errlog,
                text=True,
                cwd=ROOT,
            )
        if out.returncode != 0:
            log(f"{rows} rows/day failed (exit {out.returncode}); see {work / 'child.log'}")
            return 1
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        dest = ROOT / "var" / "bench" / "bench_loop.json"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(results, indent=1))
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
