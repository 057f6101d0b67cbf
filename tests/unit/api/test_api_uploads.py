"""Spool housekeeping: scratch dirs of killed requests are swept, live ones kept."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from anomalyops_api.uploads import SPOOL_PREFIX, sweep_spool


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


@pytest.mark.parametrize(
    ("header", "want"),
    [("1234", 1234), ("0", 0), (None, None), ("²", None), ("٣", None), ("12a", None), ("", None),
     ("-5", None), ("1" * 21, None), ("12\n", None)],
)  # fmt: skip
def test_declared_length_takes_ascii_digits_only(header, want) -> None:
    from anomalyops_api.uploads import declared_length

    assert declared_length(header) == want
