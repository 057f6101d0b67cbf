"""Fault injection: the process running the Pusher's publish is SIGKILLed at every step
(mid-write, just before the rename, just after it). The API's view of the serving directory
(``scan_versions`` + ``read_metadata``, what the registry loads from) never shows a partial
or duplicated version, and the next push and retention clean up after the dead one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from anomalyops import model_contract
from anomalyops_api.demo_model import metadata
from anomalyops_api.metrics import ApiMetrics
from anomalyops_api.model import ModelLoadError, read_metadata
from anomalyops_api.registry import ModelRegistry
from anomalyops_api.serving_dir import scan_versions
from anomalyops_tfx.components.pusher import logic
from tests.helpers.api import SPEC, numpy_model

# A push in its own process: the model writer is slow and writes a tag into every file, and
# the rename is bracketed by pauses so the test can kill on either side of it.
PUSHER = r"""
import json, os, sys, time
from pathlib import Path
from anomalyops import model_contract

serving, version, tag, meta = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])

def write_model(path):
    (path / "variables").mkdir(parents=True)
    print("writing", flush=True)
    for i in range(40):
        (path / "variables" / f"variables.data-{i:05d}").write_bytes(tag.encode() * 2000)
        time.sleep(0.01)
    (path / "variables" / "variables.index").write_bytes(tag.encode())
    (path / "saved_model.pb").write_bytes(tag.encode())

real_rename = os.rename
def rename(src, dst):
    print("renaming", flush=True)
    time.sleep(0.4)
    real_rename(src, dst)
    print("renamed", flush=True)
    time.sleep(0.4)
model_contract.os.rename = rename

final = model_contract.publish(serving, version, write_model, meta)
print("done", final.name, flush=True)
"""


def _meta(version: int, tag: str) -> dict:
    return metadata(SPEC, version, threshold=3.0) | {"tag": tag}


def _push(serving: Path, version: int, tag: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", PUSHER, str(serving), str(version), tag,
         json.dumps(_meta(version, tag))],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def api_view(serving: Path) -> dict[int, str]:
    """Every version the API would load, checked whole: {version: push tag}."""
    seen = {}
    for v in scan_versions(serving):
        if not v.complete:
            continue
        meta = read_metadata(v.path)  # a torn or missing file raises here
        tag = meta.model_extra["tag"]
        assert meta.version == v.version, f"{v.path}: metadata says {meta.version}"
        assert (v.path / "saved_model.pb").read_bytes() == tag.encode(), v.path
        data = sorted((v.path / "variables").glob("variables.data-*"))
        assert len(data) == 40 and all(p.read_bytes() == tag.encode() * 2000 for p in data)
        seen[v.version] = tag
    tags = list(seen.values())
    assert len(tags) == len(set(tags)), f"a push appears twice: {seen}"
    return seen


class Watcher(threading.Thread):
    """Scans like the API's poll loop, as fast as it can, and keeps every violation."""

    def __init__(self, serving: Path):
        super().__init__(daemon=True)
        self.serving, self.stop, self.errors, self.scans = serving, threading.Event(), [], 0

    def run(self):
        while not self.stop.is_set():
            try:
                api_view(self.serving)
                self.scans += 1
            except (AssertionError, ModelLoadError) as exc:
                self.errors.append(repr(exc))
            except FileNotFoundError:
                pass  # a directory renamed away between listing and reading: scan again


def _kill_at(serving: Path, version: int, tag: str, marker: str, delay: float = 0.0) -> None:
    proc = _push(serving, version, tag)
    try:
        for line in proc.stdout:
            if line.strip() == marker:
                break
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_a_push_killed_at_any_step_never_shows_a_partial_or_duplicate_version(tmp_path):
    serving = tmp_path / "serving"
    good = _push(serving, 100, "good")
    assert good.communicate(timeout=60)[0].split()[-1] == "100"
    watcher = Watcher(serving)
    watcher.start()
    try:
        _kill_at(serving, 101, "killed-mid-write", "writing", delay=0.15)
        assert api_view(serving) == {100: "good"}
        _kill_at(serving, 101, "killed-before-rename", "renaming")
        assert api_view(serving) == {100: "good"}
        _kill_at(serving, 101, "killed-after-rename", "renamed")
        # The rename is the commit: this push is whole, under the number it asked for.
        assert api_view(serving) == {100: "good", 101: "killed-after-rename"}
        again = _push(serving, 101, "after-the-kills")  # same number: the next free one
        out = again.communicate(timeout=60)[0]
        assert out.split()[-1] == "102", out
    finally:
        watcher.stop.set()
        watcher.join()
    assert not watcher.errors, watcher.errors[:3]
    assert watcher.scans > 10
    view = api_view(serving)
    assert view == {100: "good", 101: "killed-after-rename", 102: "after-the-kills"}
    leftovers = [p.name for p in serving.iterdir() if p.name.startswith(model_contract.TMP_PREFIX)]
    assert len(leftovers) == 3  # one private temp dir per killed push, named for diagnosis
    assert all(name.startswith(".tmp-101-") for name in leftovers)
    # Retention removes the dead pushes' temp dirs once they are old enough.
    logic.prune_versions(serving, keep=10, stale_tmp_s=0.0)
    assert sorted(p.name for p in serving.iterdir()) == ["100", "101", "102"]
    # And the API's registry serves the newest whole version.
    registry = ModelRegistry(serving, metrics=ApiMetrics(), loader=lambda p, v: numpy_model(v))
    assert registry.refresh().version == 102
