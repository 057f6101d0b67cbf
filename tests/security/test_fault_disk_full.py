"""Fault injection: the disk fills up during a lake write and during a push.

On a real 2 MiB tmpfs where this process may mount one (root), else (and also) through a
wrapper that raises ``OSError(ENOSPC)`` once a byte quota is used up. Free space is swept so
the failure lands on every write in turn (data file, side file, marker, journal, model
files, metadata). Every attempt must either succeed whole or fail with ENOSPC leaving the old
partition / the served model exactly as they were, and nothing half-written behind.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomalyops import model_contract
from anomalyops.lake import Lake, Zone
from anomalyops_api.demo_model import metadata
from anomalyops_api.metrics import ApiMetrics
from anomalyops_api.model import read_metadata
from anomalyops_api.registry import ModelRegistry
from anomalyops_api.serving_dir import scan_versions
from anomalyops_tfx.components.pusher import logic
from tests.helpers.api import SPEC, numpy_model

DAY = "2026-11-05"
DISK_BYTES = 2 * 1024 * 1024


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)  # random floats: Parquet cannot compress them away
    return pd.DataFrame({c: rng.normal(size=rows) for c in ("a", "b", "c")})


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the quota tests cover it")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill_to(disk: Path, free: int) -> None:
    """Leave about ``free`` bytes free on ``disk`` (a filler file takes the rest)."""
    filler = disk / "filler"
    filler.unlink(missing_ok=True)
    st = os.statvfs(disk)
    take = st.f_bavail * st.f_frsize - free
    if take > 0:
        with open(filler, "wb") as f:
            f.write(b"\0" * take)


def quota_open(limit: list[int]):
    """``open`` whose writes fail with ENOSPC once ``limit[0]`` bytes were written."""

    class Quota:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            if len(data) > limit[0]:
                raise OSError(errno.ENOSPC, "No space left on device (injected)")
            limit[0] -= len(data)
            return self._f.write(data)

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    def _open(path, mode="r", *args, **kwargs):
        f = builtins.open(path, mode, *args, **kwargs)  # noqa: SIM115 - wrapped, closed by it
        return Quota(f) if any(m in mode for m in "wax+") else f

    return _open


# -- the lake --------------------------------------------------------------------------------
def _check_lake_attempt(
    lake: Lake, current: pd.DataFrame, new: pd.DataFrame, write
) -> pd.DataFrame:
    try:
        write()
        expected = new
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
        expected = current
    fresh = Lake(lake.url)  # another process's view
    assert fresh.read_table(Zone.RAW, DAY).equals(expected)
    assert fresh.read_meta(Zone.RAW, DAY)["rows"] == len(expected)
    assert fresh.read_file(Zone.RAW, DAY, "note.txt") == f"{len(expected)} rows".encode()
    tmp = f"{lake.zone_path(Zone.RAW)}/_tmp"
    assert not lake.fs.exists(tmp) or lake.fs.ls(tmp, detail=False) == [], "half-written leftovers"
    return expected


def _write(lake: Lake, df: pd.DataFrame):
    return lambda: lake.write_table(
        Zone.RAW, DAY, df, files={"note.txt": f"{len(df)} rows".encode()}
    )


def test_lake_write_on_a_full_tmpfs_keeps_the_old_partition(small_disk):
    lake = Lake(str(small_disk / "lake"))
    current = frame(4000, seed=1)
    _write(lake, current)()
    new = frame(16000, seed=2)  # ~390 KB of Parquet
    outcomes = set()
    for free in [0, *range(4096, 720 * 1024, 24 * 1024)]:
        fill_to(small_disk, free)
        before = current
        current = _check_lake_attempt(lake, current, new, _write(lake, new))
        outcomes.add("new" if current is new else "old")
        if current is new:  # put the old one back for the next, roomier attempt
            (small_disk / "filler").unlink()
            current = before
            _write(lake, current)()
    assert outcomes == {"old", "new"}  # the sweep crossed from failing to fitting


def test_lake_write_hitting_enospc_at_every_file_keeps_the_old_partition(tmp_path, monkeypatch):
    lake = Lake(str(tmp_path / "lake"))
    current = frame(300, seed=1)
    _write(lake, current)()
    new = frame(900, seed=2)
    real_put = lake._put
    outcomes = []
    for quota in range(0, 40_000, 1500):
        left = [quota]

        def put(path, data, left=left):
            if len(data) > left[0]:
                raise OSError(errno.ENOSPC, "No space left on device (injected)")
            left[0] -= len(data)
            real_put(path, data)

        monkeypatch.setattr(lake, "_put", put)
        result = _check_lake_attempt(lake, current, new, _write(lake, new))
        outcomes.append(result is new)
        monkeypatch.setattr(lake, "_put", real_put)
        if result is new:
            _write(lake, current)()
    assert not outcomes[0] and outcomes[-1]


# -- the push --------------------------------------------------------------------------------
def _writer(size: int, tag: str, opener=builtins.open):
    def write_model(path: Path) -> None:
        (path / "variables").mkdir(parents=True)
        with opener(path / "variables" / "variables.data-00000-of-00001", "wb") as f:
            for _ in range(size // 4096):
                f.write(tag.encode().ljust(4096, b"."))
        with opener(path / "variables" / "variables.index", "wb") as f:
            f.write(tag.encode())
        with opener(path / "saved_model.pb", "wb") as f:
            f.write(tag.encode())

    return write_model


def _served_view(serving: Path) -> dict[int, str]:
    view = {}
    for v in scan_versions(serving):
        assert v.complete, f"{v.path} is a partial version"
        meta = read_metadata(v.path)
        tag = meta.model_extra["tag"]
        assert (
            meta.version == v.version and (v.path / "saved_model.pb").read_bytes() == tag.encode()
        )
        view[v.version] = tag
    return view


def _serve(serving: Path) -> int | None:
    registry = ModelRegistry(serving, metrics=ApiMetrics(), loader=lambda p, v: numpy_model(v))
    return registry.refresh().version


def _check_push(serving: Path, attempt) -> str:
    before = _served_view(serving)
    try:
        final = attempt()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
        assert _served_view(serving) == before, "a failed push changed what is served"
        assert _serve(serving) == max(before)
        outcome = "failed"
    else:
        assert _served_view(serving) == before | {int(final.name): "new"}
        shutil.rmtree(final)  # back to the one good version for the next, roomier try
        outcome = "pushed"
    assert [p.name for p in serving.iterdir() if p.name.startswith(".")] == [], "leftovers"
    return outcome


def test_push_on_a_full_tmpfs_keeps_the_served_model(small_disk):
    serving = small_disk / "serving"
    model_contract.publish(
        serving, 1, _writer(64 * 1024, "good"), metadata(SPEC, 1, threshold=3.0) | {"tag": "good"}
    )
    outcomes = set()
    for free in [0, *range(4096, 400 * 1024, 20 * 1024)]:
        fill_to(small_disk, free)
        version = max(logic.existing_versions(serving)) + 1
        meta = metadata(SPEC, version, threshold=3.0) | {"tag": "new"}
        outcomes.add(
            _check_push(
                serving,
                lambda v=version, m=meta: model_contract.publish(
                    serving, v, _writer(300 * 1024, "new"), m
                ),
            )
        )
        # The good version must survive every attempt, as the one a restart would serve.
        if "good" not in _served_view(serving).values():
            pytest.fail("the served model was lost")
    assert outcomes == {"failed", "pushed"}


def test_push_hitting_enospc_at_every_file_keeps_the_served_model(tmp_path, monkeypatch):
    serving = tmp_path / "serving"
    model_contract.publish(
        serving, 1, _writer(8192, "good"), metadata(SPEC, 1, threshold=3.0) | {"tag": "good"}
    )
    outcomes = []
    for quota in range(0, 40_000, 2048):
        left = [quota]
        opener = quota_open(left)
        monkeypatch.setattr(model_contract, "open", opener, raising=False)  # the metadata write
        version = max(logic.existing_versions(serving)) + 1
        meta = metadata(SPEC, version, threshold=3.0) | {"tag": "new", "pad": "x" * 2000}
        outcomes.append(
            _check_push(
                serving,
                lambda v=version, m=meta, o=opener: model_contract.publish(
                    serving, v, _writer(16384, "new", o), m
                ),
            )
        )
        assert "good" in _served_view(serving).values()
    monkeypatch.undo()
    assert outcomes[0] == "failed" and outcomes[-1] == "pushed"
    assert json.loads((serving / "1" / model_contract.METADATA_FILE).read_text())["tag"] == "good"
