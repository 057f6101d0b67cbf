"""Spool housekeeping: scratch dirs of killed requests are swept, live ones kept."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from anomalyops_api.uploads import SPOOL_PREFIX, sweep_spool

pytestmark = pytest.mark.unit


def test_sweep_removes_only_old_scratch_dirs(tmp_path: Path) -> None:
    old, young, other = (
        tmp_path / f"{SPOOL_PREFIX}old",
        tmp_path / f"{SPOOL_PREFIX}new",
        tmp_path / "mine",
    )
    for path in (old, young, other):
        path.mkdir()
        (path / "input").write_bytes(b"x")
    stamp = time.time() - 7200
    os.utime(old, (stamp, stamp))
    os.utime(other, (stamp, stamp))
    assert sweep_spool(tmp_path, max_age_s=3600) == 1
    assert not old.exists() and young.exists() and other.exists()
