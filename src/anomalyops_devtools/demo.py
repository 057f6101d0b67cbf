"""``make run``: the whole loop on this machine, on embedded defaults.

Starts a local SMTP sink, the scoring API (uvicorn) and Airflow (scheduler, webserver and
triggerer on Airflow 2; scheduler, api-server, dag-processor and triggerer on Airflow 3; SQLite), backfills two to three weeks of simulated days through the real ingestion
DAG (one corrupt day, a sudden drift; one ``DAG.test`` run a day, in order, in one process,
one progress line a day), triggers one training run over the window, waits until the API
serves the pushed model, scores a sample file through the API and prints where to look. It stays up until Ctrl-C;
``make stop`` stops what a detached run started.

Everything lives under ``var/`` (pids, logs, mail, secrets) and ``data_lake/``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from anomalyops.settings import PROJECT_ROOT
from anomalyops_airflow.dag_ids import INGEST_DAG_ID, TRAIN_DAG_ID
from anomalyops_airflow.env import airflow_major
from anomalyops_devtools.demo_env import DemoConfig, demo_env, secret, write_passwords_file
from anomalyops_devtools.ingest_days import run_in_child, tally
from anomalyops_devtools.processes import (
    BIN,
    LOG_DIR,
    VAR,
    finish,
    port_free,
    run,
    spawn,
    start_service,
    stop_all,
    wait_until_stopped,
)


def say(msg: str) -> None:
    print(f"\033[1m[run]\033[0m {msg}", flush=True)


# -- Airflow state ------------------------------------------------------------------------
def _airflow_json(args: list[str], env: dict[str, str]) -> list[dict]:
    out = subprocess.run(
        [str(BIN / "airflow"), *args, "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    try:
        return json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else []
    except (json.JSONDecodeError, IndexError):
        return []


BOTH_DAGS = f"^({re.escape(INGEST_DAG_ID)}|{re.escape(TRAIN_DAG_ID)})$"
"""The ingest and training DAGs, as one ``--treat-dag-id-as-regex`` pattern."""

_TASK_END = re.compile(r"Marking task as (\w+)\. dag_id=\S+, task_id=([^,\s]+)")
# Airflow 3's dag.test logs no state per task, only its end.
_TASK_END_3 = re.compile(r"\[DAG TEST\] end task task_id=(\S+)")


def _task_ended(line: str, af3: bool) -> tuple[str, str] | None:
    """(task id, state) from a ``dags test`` line that ends a task; the state may be "done".

    Airflow 2 logs both lines for each task: only the one with the state counts there.
    """
    if match := _TASK_END.search(line):
        return match.group(2), match.group(1).lower()
    if af3 and (match := _TASK_END_3.search(line)):
        return match.group(1), "done"
    return None


def train_in_one_process(env: dict[str, str], airflow: str) -> str:
    """One run of the training DAG with every task in this one process; return its state.

    Under the embedded SequentialExecutor each task is a fresh ``airflow tasks run`` that
    imports TensorFlow/TFX again (≈ 20-40 s a task here, ≈ 8 min a run); ``airflow dags test``
    runs the same tasks in one process and records the run in Airflow's database, so it shows
    in the UI (its task logs are in var/demo/train.log, not in the UI). The DAG stays paused
    meanwhile, so the scheduler does not pick up the same tasks.
    """
    logical = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    af3 = airflow_major() >= 3
    started = time.monotonic()
    with open(LOG_DIR / "train.log", "w") as log:
        proc = subprocess.Popen(
            [airflow, "dags", "test", TRAIN_DAG_ID, logical.isoformat()],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=PROJECT_ROOT,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if ended := _task_ended(line, af3):
                say(f"  {ended[0]:<28} {ended[1]:<8} (+{time.monotonic() - started:4.0f}s)")
        proc.wait()
    # Airflow 3: the DAG id is positional and a run's date is its logical_date.
    list_runs = ["dags", "list-runs", *([] if af3 else ["-d"]), TRAIN_DAG_ID]
    date_key = "logical_date" if af3 else "execution_date"
    runs = [
        r
        for r in _airflow_json(list_runs, env)
        if r.get(date_key) and dt.datetime.fromisoformat(r[date_key]) == logical
    ]
    if not runs:
        return f"unknown (airflow dags test exited {proc.returncode}; see {LOG_DIR / 'train.log'})"
    return runs[0]["state"]


# -- the loop -----------------------------------------------------------------------------
def up(cfg: DemoConfig, *, follow: bool = True) -> int:
    t0 = time.monotonic()
    for port, what in (
        (cfg.api_port, "API"),
        (cfg.web_port, "Airflow UI"),
        (cfg.smtp_port, "SMTP sink"),
    ):
        if not port_free(port):
            raise SystemExit(f"port {port} ({what}) is in use: `make stop`, or free it, then retry")
    env = demo_env(cfg)
    airflow = str(BIN / "airflow")
    af3 = airflow_major() >= 3
    say(
        f"days {cfg.start} .. {cfg.end}: corrupt day {cfg.corrupt_day}, sudden drift from {cfg.drift_day}"
    )
    say(
        f"Airflow home {env['AIRFLOW_HOME']} (SQLite, {env['AIRFLOW__CORE__EXECUTOR']}); "
        f"logs in {LOG_DIR}"
    )
    # Compiling imports TFX (≈ 20 s) and needs no database: it runs while Airflow's DB is set up.
    say("compiling the TFX pipeline to IR (anomalyops compile-pipeline)")
    compiling = spawn([str(BIN / "anomalyops"), "compile-pipeline"], env, "compile")
    try:
        run([airflow, "db", "migrate"], env, "airflow-db")
        password = secret("airflow-admin-password")
        if af3:
            # SimpleAuthManager: the user is in the configuration, the password in a file.
            write_passwords_file(password)
        else:
            # On stdin (Airflow asks twice), never on the command line where any local user
            # can read it (ps); a new session has no terminal, so Airflow's getpass reads stdin.
            with open(LOG_DIR / "airflow-users.log", "ab") as log:
                subprocess.run(
                    [airflow, "users", "create", "-u", "admin", "-r", "Admin", "-f", "Admin",
                     "-l", "User", "-e", "admin@localhost"],
                    input=f"{password}\n{password}\n".encode(),
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=PROJECT_ROOT,
                    start_new_session=True,
                    check=False,  # the user exists on a re-run
                )  # fmt: skip
    except BaseException:  # no compiler left running behind a failed start
        compiling.kill()
        raise
    finish(compiling, "compile")
    run([airflow, "dags", "reserialize"], env, "airflow-reserialize")
    # Paused while the history is backfilled: paused DAGs get no Dataset queue entries, so the
    # backfill does not queue one training run per day; one run over the window follows.
    # One CLI call for both (each call is seconds of Airflow imports).
    run(
        [airflow, "dags", "pause", "-y", "--treat-dag-id-as-regex", BOTH_DAGS], env, "airflow-pause"
    )

    maildir = VAR / "mail"
    start_service(
        "mail-sink",
        [
            str(BIN / "anomalyops"),
            "mail-sink",
            "--port",
            str(cfg.smtp_port),
            "--maildir",
            str(maildir),
        ],
        env,
    )
    start_service(
        "api",
        [
            str(BIN / "uvicorn"),
            "anomalyops_api.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(cfg.api_port),
        ],
        env,
    )
    if af3:
        # The UI, the REST API and the execution API the scheduler's task workers report to:
        # started first for a head start (a task handed out before it listens fails its first
        # try with "connection refused" and is retried).
        start_service("airflow-api-server", [airflow, "api-server"], env)
        # Airflow 3's scheduler parses no DAG files: this keeps the serialized DAGs current.
        start_service("airflow-dag-processor", [airflow, "dag-processor"], env)
        start_service("airflow-scheduler", [airflow, "scheduler"], env)
    else:
        start_service("airflow-scheduler", [airflow, "scheduler"], env)
        start_service("airflow-webserver", [airflow, "webserver"], env)
    # Runs deferred tasks: the ingest DAG's land task waits there for users' files.
    start_service("airflow-triggerer", [airflow, "triggerer"], env)
    say(
        f"started: SMTP sink :{cfg.smtp_port}, API :{cfg.api_port}, "
        + (
            f"Airflow scheduler + dag-processor + triggerer + api-server (UI) :{cfg.web_port}"
            if af3
            else f"Airflow scheduler + triggerer + UI :{cfg.web_port}"
        )
    )

    say(
        f"backfilling {cfg.days} days through {INGEST_DAG_ID}, in order, in one process "
        f"(DAG.test per day; Airflow's output in {LOG_DIR / 'backfill.log'})"
    )
    days = [cfg.start + dt.timedelta(days=i) for i in range((cfg.end - cfg.start).days + 1)]
    results = run_in_child(days, env, LOG_DIR / "backfill.log", say=say, cwd=PROJECT_ROOT)
    say(
        f"backfill finished in {time.monotonic() - t0:.0f}s from start: {tally(results)} "
        "(a quarantined day is expected: the corrupt one)"
    )
    say(
        f"training: one TFX run over the window, all {TRAIN_DAG_ID} tasks in one process "
        "(`airflow dags test`: TensorFlow imported once); the run shows in the UI"
    )
    state = train_in_one_process(env, airflow)
    say(f"training run {state} after {time.monotonic() - t0:.0f}s from start")
    # From now on new validated days trigger training through the scheduler (Dataset). The
    # summary only needs the API, so it does not wait for the CLI.
    unpausing = spawn(
        [airflow, "dags", "unpause", "-y", "--treat-dag-id-as-regex", BOTH_DAGS],
        env,
        "airflow-pause",
    )
    summary(cfg, env, maildir, t0)
    if finish(unpausing, "airflow-pause", check=False) != 0:
        say(
            f"could not unpause the DAGs: see {LOG_DIR / 'airflow-pause.log'}; unpause them in the UI"
        )
    if not follow:
        return 0 if state == "success" else 1
    say("up until Ctrl-C (or `make stop` from another terminal)")
    try:
        wait_until_stopped()
        say("services stopped from elsewhere (`make stop`)")
    except KeyboardInterrupt:
        pass
    finally:
        stopped = stop_all()
        if stopped:
            say(f"stopping: {', '.join(stopped)}")
    return 0


def summary(cfg: DemoConfig, env: dict[str, str], maildir: Path, t0: float) -> None:
    from anomalyops.lake import Lake, Zone
    from anomalyops.settings import Settings

    os.environ.update({k: v for k, v in env.items() if k.startswith("ANOMALYOPS_")})
    settings = Settings()
    lake = Lake(settings.lake_root)
    api = env["ANOMALYOPS_API_URL"]
    served = _get_json(f"{api}/v1/models", env["ANOMALYOPS_API_KEYS"])
    version = served.get("active_version") if served else None
    say("---------------------------------------------------------------------------")
    say(
        f"Airflow UI        http://127.0.0.1:{cfg.web_port}  (admin / {secret('airflow-admin-password')})"
    )
    say(
        f"validated days    {len(lake.partitions(Zone.VALIDATED))} in {lake.uri(lake.zone_path(Zone.VALIDATED))}"
    )
    for day in lake.partitions(Zone.QUARANTINE):
        say(
            f"quarantined       {day}: {lake.uri(lake.partition_path(Zone.QUARANTINE, day))}/reason.json"
        )
    mails = sorted(maildir.glob("*.eml")) if maildir.exists() else []
    say(
        f"alert emails      {len(mails)} in {maildir}"
        + (f" (newest: {mails[-1].name})" if mails else "")
    )
    say(
        f"reports           {lake.uri(lake.zone_path(Zone.REPORTS))} (GX Data Docs, TFDV statistics HTML)"
    )
    say(f"served model      version {version} at {api}/v1/models  (API docs: {api}/docs)")
    if version:
        sample = score_sample(cfg, env)
        if sample:
            say(f"sample scored     {sample}")
    say(
        f"first model served {time.monotonic() - t0:.0f}s after start"
        if version
        else "no model served yet"
    )
    say(
        f"API key for uploads: {env['ANOMALYOPS_API_KEYS']}  (curl -H 'X-API-Key: …' -F file=@day.csv {api}/v1/score)"
    )


def _get_json(url: str, key: str) -> dict | None:
    req = urllib.request.Request(url, headers={"X-API-Key": key})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())
    except (OSError, json.JSONDecodeError):
        return None


def score_sample(cfg: DemoConfig, env: dict[str, str]) -> str | None:
    """Simulate today's data, upload it to the API, keep the scored CSV under var/demo/."""
    import httpx

    from anomalyops.ingest import simulator_config
    from anomalyops.settings import Settings
    from anomalyops.sources.simulator import simulate_day
    from anomalyops.spec import load_spec

    settings = Settings()
    spec = load_spec(settings.feature_spec_path)
    frame = simulate_day(spec, cfg.today, simulator_config(settings))
    src = LOG_DIR / f"sample-{cfg.today}.csv"
    frame.drop(columns=[c for c in [spec.label_column] if c]).to_csv(src, index=False)
    with open(src, "rb") as f:
        resp = httpx.post(
            f"{env['ANOMALYOPS_API_URL']}/v1/score",
            headers={"X-API-Key": env["ANOMALYOPS_API_KEYS"], "Accept": "text/csv"},
            files={"file": (src.name, f, "text/csv")},
            timeout=120,
        )
    if resp.status_code != 200:
        say(f"scoring the sample failed: {resp.status_code} {resp.text[:200]}")
        return None
    out = LOG_DIR / f"sample-{cfg.today}.scored.csv"
    out.write_bytes(resp.content)
    flagged = sum(1 for line in resp.text.splitlines()[1:] if ",true" in line.lower())
    return f"{src} -> {out} ({len(frame)} rows, {flagged} flagged, model {resp.headers.get('x-model-version')})"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="anomalyops demo")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--days", type=int, default=DemoConfig.days)
    parser.add_argument(
        "--detach", action="store_true", help="return once the first model is served"
    )
    args = parser.parse_args(argv)
    if args.action == "down":
        stopped = stop_all()
        say(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return 0
    try:
        return up(DemoConfig(days=args.days), follow=not args.detach)
    except BaseException:
        if not args.detach:
            say(f"stopping: {', '.join(stop_all())}")
        raise


if __name__ == "__main__":
    sys.exit(main())
