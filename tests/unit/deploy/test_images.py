"""The Dockerfiles checked without a Docker engine: linted (hadolint, shellcheck on the scripts
they run), their base images agree with uv.lock, what they COPY exists and reaches the build
context, and the API image's locked environment has no Airflow or TFX in it."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.compose import REPO_ROOT

DOCKERFILES = {
    "airflow": REPO_ROOT / "docker" / "airflow" / "Dockerfile",
    "api": REPO_ROOT / "docker" / "api" / "Dockerfile",
}
SCRIPTS = sorted((REPO_ROOT / "docker").rglob("*.sh"))
NOT_IN_API = {
    "apache-airflow",
    "tfx",
    "apache-beam",
    "tensorflow-data-validation",
    "tensorflow-transform",
    "ml-metadata",
    "great-expectations",
}


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (dev dependency {name}-bin / -py from uv.lock)")
    return found


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_passes_hadolint(name):
    result = subprocess.run(
        [_tool("hadolint"), "--no-color", str(DOCKERFILES[name])], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_entrypoint_scripts_pass_shellcheck():
    assert SCRIPTS, "no scripts found under docker/"
    result = subprocess.run(
        [_tool("shellcheck"), "--severity=style", *map(str, SCRIPTS)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_are_strict_and_executable(script):
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert script.stat().st_mode & 0o111


def _lock() -> dict[str, dict]:
    import tomli

    data = tomli.loads((REPO_ROOT / "uv.lock").read_text())
    return {p["name"]: p for p in data["package"]}


def _closure(lock: dict[str, dict], extra: str) -> set[str]:
    """Packages `uv sync --no-dev --extra <extra>` installs (markers ignored: a superset)."""
    root = lock["anomalyops"]
    todo = [d["name"] for d in root.get("dependencies", [])]
    todo += [d["name"] for d in root.get("optional-dependencies", {}).get(extra, [])]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        package = lock[name]
        todo += [d["name"] for d in package.get("dependencies", [])]
        for dep in package.get("dependencies", []):
            for wanted in dep.get("extra", []):
                todo += [
                    d["name"] for d in package.get("optional-dependencies", {}).get(wanted, [])
                ]
    return seen


def test_the_api_image_environment_has_no_airflow_and_no_tfx():
    lock = _lock()
    api = _closure(lock, "api")
    assert {"tensorflow", "fastapi", "uvicorn"} <= api
    assert api & NOT_IN_API == set(), "the API extra pulls in the pipeline stack"
    pipeline = _closure(lock, "pipeline")
    assert pipeline >= NOT_IN_API  # the check can see them where they are


def _base_tag(dockerfile: Path, arg: str) -> str:
    match = re.search(rf"^ARG {arg}=(\S+)$", dockerfile.read_text(), re.M)
    assert match, f"{dockerfile}: no ARG {arg}"
    return match.group(1)


def test_the_airflow_base_image_is_the_locked_airflow_on_python_310():
    lock = _lock()
    tag = _base_tag(DOCKERFILES["airflow"], "AIRFLOW_BASE_IMAGE")
    assert tag == f"apache/airflow:{lock['apache-airflow']['version']}-python3.10"
    assert lock["tfx"]["version"] == "1.16.0"  # needs Python 3.10 (../shared/STACK.md)


def test_the_api_base_image_is_slim_python_310():
    assert _base_tag(DOCKERFILES["api"], "PYTHON_IMAGE") == "python:3.10-slim-bookworm"


def test_both_images_install_from_the_lock_with_the_same_uv():
    versions = {_base_tag(path, "UV_VERSION") for path in DOCKERFILES.values()}
    assert len(versions) == 1
    for name, path in DOCKERFILES.items():
        syncs = re.findall(r"uv sync ([^\n\\&]+)", path.read_text())
        assert syncs, path
        for args in syncs:
            assert "--frozen" in args and "--no-dev" in args, f"{name}: uv sync {args}"
            assert f"--extra {'pipeline' if name == 'airflow' else 'api'}" in args
            assert "--extra pipeline" not in args or name == "airflow"


def _instructions(dockerfile: Path) -> list[list[str]]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    return [line.split() for line in text.splitlines() if line and not line.startswith("#")]


def _dockerignored(rel: str) -> bool:
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(p, pat.lstrip("/")) for pat in patterns for p in prefixes)


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_everything_copied_exists_and_reaches_the_build_context(name):
    copied = 0
    for words in _instructions(DOCKERFILES[name]):
        if words[0] != "COPY" or any(w.startswith("--from") for w in words):
            continue
        for source in [w for w in words[1:-1] if not w.startswith("--")]:
            assert (REPO_ROOT / source).exists(), f"{name}: COPY {source}: not in the repo"
            assert not _dockerignored(source.rstrip("/")), f"{name}: {source} is .dockerignored"
            copied += 1
    assert copied >= 3


def test_dockerignore_keeps_secrets_and_local_state_out():
    for rel in (".env", ".venv", ".git", "var", "data_lake"):
        assert _dockerignored(rel), rel


def test_the_api_image_runs_as_non_root_with_a_healthcheck():
    instructions = _instructions(DOCKERFILES["api"])
    final = instructions[max(i for i, w in enumerate(instructions) if w[0] == "FROM") :]
    users = [w[1] for w in final if w[0] == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    health = [w for w in final if w[0] == "HEALTHCHECK"]
    assert health and "/opt/anomalyops/docker/entrypoints/healthcheck.py" in " ".join(health[0])


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_entrypoints_are_repo_scripts_under_the_app_root(name):
    entry = [w for w in _instructions(DOCKERFILES[name]) if w[0] == "ENTRYPOINT"]
    assert len(entry) == 1
    scripts = re.findall(r"/opt/anomalyops/([\w/.-]+\.sh)", " ".join(entry[0]))
    assert scripts and all((REPO_ROOT / s).is_file() for s in scripts)
