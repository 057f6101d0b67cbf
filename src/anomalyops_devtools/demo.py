"""``make run``: the whole loop on this machine, on embedded defaults.

Starts a local SMTP sink, the scoring API (uvicorn) and Airflow (scheduler + webserver, SQLite),
backfills two to three weeks of simulated days through the real ingestion DAG (one corrupt day,
a sudden drift), triggers one training run over the window, waits until the API serves the
pushed model, scores a sample file through the API and prints where to look. It stays up until
Ctrl-C; ``make stop`` stops what a detached run started.

Everything lives under ``var/`` (pids, logs, mail, secrets) and ``data_lake/``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from anomalyops.settings import PROJECT_ROOT
from anomalyops_airflow.env import airflow_env

VAR = PROJECT_ROOT / "var"
RUN_DIR = VAR / "run"
LOG_DIR = VAR / "demo"
BIN = Path(sys.executable).parent
INGEST_DAG, TRAIN_DAG = "anomalyops_ingest", "anomalyops_train"


def say(msg: str) -> None:
    print(f"\033[1m[run]\033[0m {msg}", flush=True)


@dataclass
class DemoConfig:
    days: int = 20
    corrupt_offset: int = 6
    drift_offset: int = 13
    api_port: int = 8000
    web_port: int = 8080
    smtp_port: int = 8025
    rows_per_day: int = 1440
    today: dt.date = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).date())

    @property
    def start(self) -> dt.date:
        return self.today - dt.timedelta(days=self.days)

    @property
    def end(self) -> dt.date:
        return self.today - dt.timedelta(days=1)

    @property
    def corrupt_day(self) -> dt.date:
        return self.start + dt.timedelta(days=self.corrupt_offset)

    @property
    def drift_day(self) -> dt.date:
        return self.start + dt.timedelta(days=self.drift_offset)


def _secret(name: str) -> str:
    """A per-checkout development secret, generated once and kept under var/ (git-ignored)."""
    path = VAR / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def demo_env(cfg: DemoConfig) -> dict[str, str]:
    env = {**os.environ, **airflow_env()}
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "ANOMALYOPS_START_DATE": cfg.start.isoformat(),
            "ANOMALYOPS_SIMULATOR__ROWS_PER_DAY": str(cfg.rows_per_day),
            "ANOMALYOPS_SIMULATOR__SCENARIO": "sudden",
            "ANOMALYOPS_SIMULATOR__DRIFT_START": cfg.drift_day.isoformat(),
            "ANOMALYOPS_SIMULATOR__CORRUPT_DAYS": json.dumps(
                {cfg.corrupt_day.isoformat(): "nulls"}
            ),
            "ANOMALYOPS_SMTP__PORT": str(cfg.smtp_port),
            "ANOMALYOPS_API_URL": f"http://127.0.0.1:{cfg.api_port}",
            "ANOMALYOPS_API_ADMIN_KEY": _secret("api-admin-key"),
            "ANOMALYOPS_API_KEYS": _secret("api-key"),
            "AIRFLOW__WEBSERVER__WEB_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__WEBSERVER__WEB_SERVER_PORT": str(cfg.web_port),
            "AIRFLOW__WEBSERVER__SECRET_KEY": _secret("airflow-webserver-key"),
            "AIRFLOW__WEBSERVER__WORKERS": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "30",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


# -- processes ----------------------------------------------------------------------------
def start_service(name: str, argv: list[str], env: dict[str, str]) -> int:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = open(LOG_DIR / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
    # A new session: stop() can signal the whole group (gunicorn and scheduler fork workers).
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=PROJECT_ROOT,
        start_new_session=True,
    )
    (RUN_DIR / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def stop_all(timeout: float = 20.0) -> list[str]:
    """Stop every service a run started (its pid files), politely then firmly."""
    stopped = []
    pids = {}
    for pid_file in sorted(RUN_DIR.glob("*.pid")) if RUN_DIR.exists() else []:
        try:
            pids[pid_file] = int(pid_file.read_text())
            os.killpg(pids[pid_file], signal.SIGTERM)
            stopped.append(pid_file.stem)
        except (ValueError, ProcessLookupError, PermissionError):
            pid_file.unlink(missing_ok=True)
    deadline = time.monotonic() + timeout
    for pid_file, pid in pids.items():
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)
    return stopped


def _alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def run(argv: list[str], env: dict[str, str], log_name: str, *, check: bool = True) -> int:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOG_DIR / f"{log_name}.log", "ab") as log:
        code = subprocess.call(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT
        )
    if check and code != 0:
        tail = (LOG_DIR / f"{log_name}.log").read_text(errors="replace").splitlines()[-30:]
        raise SystemExit(
            f"{' '.join(argv[:3])} failed (exit {code}); last lines:\n" + "\n".join(tail)
        )
    return code


def wait_http(url: str, timeout: float, *, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers, which is all we wait for
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"{what} did not answer at {url} within {timeout:.0f}s (see {LOG_DIR})")


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


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


_TASK_END = re.compile(r"Marking task as (\w+)\. dag_id=\S+, task_id=([^,\s]+)")


def train_in_one_process(env: dict[str, str], airflow: str) -> str:
    """One run of the training DAG with every task in this one process; return its state.

    Under the embedded SequentialExecutor each task is a fresh ``airflow tasks run`` that
    imports TensorFlow/TFX again (≈ 20-40 s a task here, ≈ 8 min a run); ``airflow dags test``
    runs the same tasks in one process and records the run in Airflow's database, so it shows
    in the UI (its task logs are in var/demo/train.log, not in the UI). The DAG stays paused
    meanwhile, so the scheduler does not pick up the same tasks.
    """
    logical = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    started = time.monotonic()
    with open(LOG_DIR / "train.log", "w") as log:
        proc = subprocess.Popen(
            [airflow, "dags", "test", TRAIN_DAG, logical.isoformat()],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=PROJECT_ROOT,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if match := _TASK_END.search(line):
                say(
                    f"  {match.group(2):<28} {match.group(1).lower():<8} "
                    f"(+{time.monotonic() - started:4.0f}s)"
                )
        proc.wait()
    runs = [
        r
        for r in _airflow_json(["dags", "list-runs", "-d", TRAIN_DAG], env)
        if dt.datetime.fromisoformat(r["execution_date"]) == logical
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
        if not _port_free(port):
            raise SystemExit(f"port {port} ({what}) is in use: `make stop`, or free it, then retry")
    env = demo_env(cfg)
    airflow = str(BIN / "airflow")
    say(
        f"days {cfg.start} .. {cfg.end}: corrupt day {cfg.corrupt_day}, sudden drift from {cfg.drift_day}"
    )
    say(f"Airflow home {env['AIRFLOW_HOME']} (SQLite, SequentialExecutor); logs in {LOG_DIR}")
    run([airflow, "db", "migrate"], env, "airflow-db")
    password = _secret("airflow-admin-password")
    # On stdin (Airflow asks twice), never on the command line where any local user can read
    # it (ps); a new session has no terminal, so Airflow's getpass reads stdin.
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
    say("compiling the TFX pipeline to IR (anomalyops compile-pipeline)")
    run([str(BIN / "anomalyops"), "compile-pipeline"], env, "compile")
    run([airflow, "dags", "reserialize"], env, "airflow-reserialize")
    # Paused while the history is backfilled: paused DAGs get no Dataset queue entries, so the
    # backfill does not queue one training run per day; one run over the window follows.
    run([airflow, "dags", "pause", TRAIN_DAG], env, "airflow-pause")
    run([airflow, "dags", "pause", INGEST_DAG], env, "airflow-pause")

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
    start_service("airflow-scheduler", [airflow, "scheduler"], env)
    start_service("airflow-webserver", [airflow, "webserver"], env)
    say(
        f"started: SMTP sink :{cfg.smtp_port}, API :{cfg.api_port}, Airflow scheduler + UI :{cfg.web_port}"
    )

    say(f"backfilling {cfg.days} days through {INGEST_DAG} (in one process: DebugExecutor) ...")
    backfill_env = {**env, "AIRFLOW__CORE__EXECUTOR": "DebugExecutor"}
    proc = subprocess.Popen(
        [
            airflow,
            "dags",
            "backfill",
            INGEST_DAG,
            "-s",
            cfg.start.isoformat(),
            "-e",
            cfg.end.isoformat(),
            "--reset-dagruns",
            "--continue-on-failures",  # the corrupt day fails by design; the rest must follow
            "-y",
        ],
        env=backfill_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=PROJECT_ROOT,
    )
    with open(LOG_DIR / "backfill.log", "w") as log:
        for line in proc.stdout:
            log.write(line)
            if "[backfill progress]" in line:
                print("\r" + line.split("[backfill progress]")[1].strip()[:110], end="", flush=True)
    proc.wait()
    print()
    say(
        f"backfill finished in {time.monotonic() - t0:.0f}s (a failed day is expected: the corrupt one)"
    )
    say(
        f"training: one TFX run over the window, all {TRAIN_DAG} tasks in one process "
        "(`airflow dags test`: TensorFlow imported once); the run shows in the UI"
    )
    state = train_in_one_process(env, airflow)
    say(f"training run {state} after {time.monotonic() - t0:.0f}s from start")
    # From now on new validated days trigger training through the scheduler (Dataset).
    run([airflow, "dags", "unpause", INGEST_DAG], env, "airflow-pause")
    run([airflow, "dags", "unpause", TRAIN_DAG], env, "airflow-pause")
    summary(cfg, env, maildir, t0)
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


def wait_until_stopped(poll_s: float = 1.0) -> None:
    """Block while any service's pid file exists: `make stop` in another terminal removes
    them, and this process then exits instead of waiting for a signal that never comes."""
    while RUN_DIR.exists() and any(RUN_DIR.glob("*.pid")):
        time.sleep(poll_s)


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
        f"Airflow UI        http://127.0.0.1:{cfg.web_port}  (admin / {_secret('airflow-admin-password')})"
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
