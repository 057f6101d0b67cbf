"""Every module that reads Parquet installs pyarrow_hotfix itself (CVE-2023-47248).

A static guard: a new ``pd.read_parquet`` or ``pq.ParquetFile`` in a module that imports
neither ``pyarrow_hotfix`` nor :mod:`anomalyops.parquet_safety` fails here, whatever else the
process it runs in happens to have imported. The behaviour itself is tested with real
pickle-bearing files in test_parquet_pickle.py and test_parquet_rce.py.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from anomalyops.settings import PROJECT_ROOT

SOURCE_DIRS = ("src", "api", "tfx_components", "dags", "plugins", "bench", "scripts")
READS = re.compile(
    r"read_parquet\(|\bParquetFile\(|pq\.read_table\(|pq\.read_schema\(|pq\.read_metadata\("
    r"|ParquetDataset\(|ReadFromParquet|feather\.read_|ipc\.open_"
)
HOTFIX = re.compile(
    r"^\s*(import pyarrow_hotfix\b|from anomalyops import parquet_safety\b)", re.MULTILINE
)


def test_every_parquet_reading_module_imports_the_hotfix() -> None:
    readers, unprotected = [], []
    for folder in SOURCE_DIRS:
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if READS.search(text):
                readers.append(path.relative_to(PROJECT_ROOT).as_posix())
                if not HOTFIX.search(text):
                    unprotected.append(readers[-1])
    assert (
        "src/anomalyops/lake.py" in readers and "src/anomalyops/sources/landing_read.py" in readers
    )
    assert unprotected == [], f"read Parquet without importing pyarrow_hotfix: {unprotected}"


@pytest.mark.parametrize(
    "module", ["anomalyops.lake", "anomalyops.ingest", "anomalyops.sources.landing_read"]
)
def test_importing_a_reader_installs_the_hotfix(module: str) -> None:
    code = f"import {module}, pyarrow as pa; print(getattr(pa, '_hotfix_installed', False))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "True"
