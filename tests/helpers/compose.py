"""Reading docker-compose.yml the way Docker Compose does, without a Docker engine.

Interpolation follows the Compose Specification: ``$$`` is a literal ``$``; ``${VAR}`` and
``$VAR``; ``${VAR:-default}`` / ``${VAR-default}``; ``${VAR:?error}`` / ``${VAR?error}``;
``${VAR:+alt}`` / ``${VAR+alt}``.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
SCHEMA_FILE = REPO_ROOT / "tests" / "data" / "compose-spec" / "compose-spec.json"
IMAGE_APP_ROOT = "/opt/anomalyops"
"""Where both images keep the repository's files (WORKDIR in docker/*/Dockerfile)."""

_TOKEN = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
_BRACED = re.compile(
    r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?$"
)


class InterpolationError(ValueError):
    pass


@dataclass(frozen=True)
class VarRef:
    name: str
    op: str | None
    arg: str | None

    @property
    def has_default(self) -> bool:
        return self.op in (":-", "-")

    @property
    def required(self) -> bool:
        return self.op in (":?", "?")


def var_refs(text: str) -> list[VarRef]:
    """Every variable reference in ``text`` (escaped ``$$`` excluded)."""
    refs = []
    for m in _TOKEN.finditer(text):
        if m.group("escaped"):
            continue
        if m.group("named"):
            refs.append(VarRef(m.group("named"), None, None))
            continue
        braced = _BRACED.match(m.group("braced"))
        if not braced:
            raise InterpolationError(f"invalid interpolation: ${{{m.group('braced')}}}")
        refs.append(VarRef(braced["name"], braced["op"], braced["arg"]))
    return refs


def interpolate(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        if m.group("escaped"):
            return "$"
        if m.group("named"):
            return env.get(m.group("named"), "")
        ref = var_refs(m.group(0))[0]
        value = env.get(ref.name)
        if ref.op == ":-":
            return value if value else ref.arg
        if ref.op == "-":
            return ref.arg if value is None else value
        if ref.op in (":?", "?") and (value is None or (ref.op == ":?" and value == "")):
            raise InterpolationError(f"required variable {ref.name} is missing: {ref.arg}")
        if ref.op == ":+":
            return ref.arg if value else ""
        if ref.op == "+":
            return "" if value is None else ref.arg
        return value or ""

    return _TOKEN.sub(sub, text)


def interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(v, env) for v in node]
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env) for k, v in node.items()}
    return node


def strings(node: Any) -> list[str]:
    """Every string value in a YAML tree."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings(v)]
    return []


def load_raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def load_schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


def env_example() -> dict[str, str]:
    from dotenv import dotenv_values

    return {k: v or "" for k, v in dotenv_values(ENV_EXAMPLE).items()}


def generated_env(tmp_dir: Path) -> dict[str, str]:
    """The .env that ``docker/init-env.sh`` writes (the documented first step)."""
    from dotenv import dotenv_values

    out = tmp_dir / ".env"
    subprocess.run(
        ["bash", str(REPO_ROOT / "docker" / "init-env.sh"), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return {k: v or "" for k, v in dotenv_values(out).items()}


def service_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def volume_mounts(service: dict) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of every volume entry, short or long syntax."""
    mounts = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, str):
            parts = entry.split(":")
            source, target = parts[0], parts[1]
            mounts.append((source, target, len(parts) > 2 and "ro" in parts[2].split(",")))
        else:
            mounts.append((entry.get("source", ""), entry["target"], bool(entry.get("read_only"))))
    return mounts


def is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def in_profile(service: dict) -> bool:
    return bool(service.get("profiles"))


def command_words(service: dict) -> list[str]:
    words: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key)
        if isinstance(value, str):
            words += value.split()
        elif value:
            words += list(value)
    test = (service.get("healthcheck") or {}).get("test")
    if isinstance(test, str):
        words += test.split()
    elif test:
        words += [w for part in test[1:] for w in str(part).split()]
    return words
