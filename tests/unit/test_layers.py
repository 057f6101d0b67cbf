"""The layers of docs/architecture.md hold: DAG files wire only the Airflow layer, and the
import contracts catch an upward import even when it hides inside a function."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.common import REPO_ROOT

DAG_FILES = sorted((REPO_ROOT / "dags").glob("*.py"))
ALLOWED_IN_DAGS = ("__future__", "airflow", "anomalyops_airflow")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def imported_modules(path: Path) -> list[str]:
    """Every module a file imports, at any depth (functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return found


def test_there_are_dag_files_to_check():
    assert {p.name for p in DAG_FILES} >= {"anomalyops_ingest.py", "anomalyops_train.py"}


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_a_dag_file_imports_only_airflow_and_the_airflow_layer(dag_file):
    outside = [m for m in imported_modules(dag_file) if m.split(".")[0] not in ALLOWED_IN_DAGS]
    assert outside == [], f"{dag_file.name} imports {outside}: wire through anomalyops_airflow"


def _copy_tree(dst: Path) -> dict[str, Path]:
    roots = {"src": "src", "api": "api", "tfx_components": "tfx_components"}
    for name, rel in roots.items():
        shutil.copytree(
            REPO_ROOT / rel, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    shutil.copy(REPO_ROOT / "pyproject.toml", dst / "pyproject.toml")
    return {name: dst / name for name in roots}


def _lint(tmp: Path, roots: dict[str, Path]) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": ":".join(str(p) for p in roots.values()), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(tmp / "pyproject.toml")],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("layers")
    return tmp, _copy_tree(tmp)


def test_the_contracts_hold_on_this_tree(tree):
    tmp, roots = tree
    out = _lint(tmp, roots)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "forbidden", "contract"),
    [
        ("src/anomalyops/lake.py", "airflow.models", "The core imports neither Airflow"),
        ("src/anomalyops/spec.py", "anomalyops_airflow.tasks", "Layers"),
        ("api/anomalyops_api/settings.py", "tfx.v1", "The scoring API imports neither"),
        ("tfx_components/anomalyops_tfx/pipeline.py", "anomalyops_airflow.ir", "Layers"),
    ],
)
def test_an_import_hidden_in_a_function_breaks_a_contract_that_names_it(
    tree, module, forbidden, contract
):
    tmp, roots = tree
    path = tmp / module
    original = path.read_text()
    path.write_text(original + f"\n\ndef _sneaky():\n    import {forbidden}  # noqa\n")
    try:
        out = _lint(tmp, roots)
    finally:
        path.write_text(original)
    importer = ".".join(Path(module).with_suffix("").parts[1:])
    assert out.returncode != 0
    assert contract in out.stdout and "BROKEN" in out.stdout
    assert f"{importer} -> {forbidden.split('.')[0]}" in out.stdout or (
        f"{importer} -> {forbidden}" in out.stdout
    ), out.stdout


def test_the_folder_sets_the_room_marker(request):
    """conftest marks tests/<room>/ with <room>: `pytest -m unit` selects this file."""
    assert request.node.get_closest_marker("unit") is not None
    assert request.node.get_closest_marker("integration") is None
