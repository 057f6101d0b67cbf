"""The services ``make run`` starts, as child processes: started, waited for, stopped.

Each service runs in a session of its own with its output in ``var/demo/<name>.log`` and its
pid in ``var/run/<name>.pid``; the pid files are how ``make stop`` (another process) finds
what a run started, and how a foreground run notices that they were stopped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from anomalyops.settings import PROJECT_ROOT

VAR = PROJECT_ROOT / "var"
RUN_DIR = VAR / "run"
LOG_DIR = VAR / "demo"
BIN = Path(sys.executable).parent


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


def wait_until_stopped(poll_s: float = 1.0) -> None:
    """Block while any service's pid file exists: `make stop` in another terminal removes
    them, and this process then exits instead of waiting for a signal that never comes."""
    while RUN_DIR.exists() and any(RUN_DIR.glob("*.pid")):
        time.sleep(poll_s)


def spawn(argv: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen:
    """Start ``argv`` with its output appended to ``var/demo/<log_name>.log``; see :func:`finish`."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOG_DIR / f"{log_name}.log", "ab") as log:
        return subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT
        )


def finish(proc: subprocess.Popen, log_name: str, *, check: bool = True) -> int:
    """Wait for a :func:`spawn`-ed process; with ``check``, a failure exits naming its log's tail."""
    code = proc.wait()
    if check and code != 0:
        tail = (LOG_DIR / f"{log_name}.log").read_text(errors="replace").splitlines()[-30:]
        raise SystemExit(
            f"{' '.join(map(str, proc.args[:3]))} failed (exit {code}); last lines:\n"
            + "\n".join(tail)
        )
    return code


def run(argv: list[str], env: dict[str, str], log_name: str, *, check: bool = True) -> int:
    return finish(spawn(argv, env, log_name), log_name, check=check)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0
