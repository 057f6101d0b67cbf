"""CVE-2023-47248: a Parquet file whose schema carries a pickled extension type must never run.

pyarrow 10.0.1 (locked for TFX) unpickles ``arrow.py_extension_type`` when it opens such a
file. The reads run in a fresh interpreter that imports only our modules, so the test proves
that *they* install pyarrow_hotfix (in this pytest process something else, Beam or the API,
may already have). Without the hotfix the marker file appears and the test fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from anomalyops.settings import PROJECT_ROOT
from anomalyops.spec import load_spec
from tests.helpers.parquet import write_pickle_parquet

DAY = "2026-11-05"
SPEC = load_spec(PROJECT_ROOT / "config" / "feature_spec.yaml")


# Runs in a fresh interpreter: only what our modules import is loaded.
_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from anomalyops.ingest import ingest
    from anomalyops.lake import Lake, Zone
    from anomalyops.settings import Settings
    from anomalyops.sources.landing import IngestError

    out = {"beam_loaded": "apache_beam" in sys.modules}
    t0 = time.monotonic()
    try:
        ingest(sys.argv[1], Settings())
        out["ingest"] = "ingested"
    except IngestError as exc:
        out["ingest"] = exc.problems
    out["ingest_s"] = time.monotonic() - t0
    try:
        Lake(Settings().lake_root).read_table(Zone.VALIDATED, sys.argv[1])
        out["read_table"] = "read"
    except Exception as exc:
        out["read_table"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    """
)


def test_pickle_bearing_parquet_is_refused_in_landing_and_lake(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    lake = tmp_path / "lake"
    landing = lake / "landing" / DAY
    landing.mkdir(parents=True)
    write_pickle_parquet(landing / "export.parquet", marker)
    # The same file planted as a complete lake partition (read by the gate, readmit, replay).
    planted = lake / "validated" / f"ds={DAY}"
    planted.mkdir(parents=True)
    (planted / "part-00000.parquet").write_bytes((landing / "export.parquet").read_bytes())
    (planted / "_SUCCESS").write_text("{}")

    env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMALYOPS_")}
    env |= {"ANOMALYOPS_LAKE_ROOT": str(lake), "ANOMALYOPS_SOURCE": "landing"}
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, DAY],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert not marker.exists(), f"the pickled payload ran:\n{proc.stderr}"
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not out["beam_loaded"], "the hotfix must come from our modules, not Beam's"
    # Landing: refused with the project's error naming the file, day quarantined, no raw.
    (problem,) = out["ingest"]
    assert problem.startswith(f"landing/{DAY}/export.parquet: refused: ")
    assert "pickled Python extension type" in problem and "CVE-2023-47248" in problem
    assert "os.system" not in problem and "touch" not in problem, "the pickle is not quoted"
    assert out["ingest_s"] < 5
    assert not (lake / "raw").exists()
    reason = json.loads((lake / "quarantine" / f"ds={DAY}" / "reason.json").read_text())
    assert reason["stage"] == "ingest" and reason["problems"] == [problem]
    # Lake partitions: refused the same way, naming the partition file.
    assert out["read_table"].startswith("UnsafeParquetError: ")
    assert f"validated/ds={DAY}/part-00000.parquet: refused" in out["read_table"]
    assert not marker.exists()
    # Nothing escaped: the only new files are the lake's own.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake"]


def test_landing_reader_refuses_it_in_this_process_too(tmp_path: Path) -> None:
    from anomalyops.sources.landing import IngestError, SourceFile
    from anomalyops.sources.landing_read import read_file

    marker = tmp_path / "MARKER"
    path = tmp_path / "x.parquet"
    write_pickle_parquet(path, marker)
    with pytest.raises(IngestError, match=r"^x\.parquet: refused: .*CVE-2023-47248"):
        read_file(SourceFile("x.parquet", path.read_bytes()))
    assert not marker.exists()
