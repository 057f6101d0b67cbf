"""`make run` in the foreground ends when `make stop` removes the services' pid files."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from anomalyops_devtools import processes


def test_the_foreground_run_returns_once_the_pid_files_are_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processes, "RUN_DIR", tmp_path)
    pid_files = [tmp_path / "api.pid", tmp_path / "mail-sink.pid"]
    for f in pid_files:
        f.write_text("12345")
    waiter = threading.Thread(target=processes.wait_until_stopped, kwargs={"poll_s": 0.01})
    waiter.start()
    time.sleep(0.1)
    assert waiter.is_alive(), "returned while services were still registered"
    pid_files[0].unlink()
    time.sleep(0.1)
    assert waiter.is_alive(), "returned while one service was still registered"
    pid_files[1].unlink()  # what `make stop` (processes.stop_all) does in another process
    waiter.join(timeout=2)
    assert not waiter.is_alive()


def test_no_run_directory_means_nothing_to_wait_for(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(processes, "RUN_DIR", tmp_path / "absent")
    processes.wait_until_stopped(poll_s=0.01)
