"""Compile the TFX pipeline to its intermediate representation (IR) and tell when it is stale.

The IR embeds absolute paths and values from settings and the feature spec, so it is compiled
per deployment (``anomalyops compile-pipeline``) into ``<compiled_dir>/<pipeline_name>.pb`` (what
the launcher runs), ``.json`` (what the DAG file reads with plain ``json``) and
``.fingerprint.json``: a sha256 over everything the IR is derived from. Recomputing the
fingerprint only hashes files, so the DAG file can afford it at every parse.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from anomalyops.settings import Settings

PIPELINE_PACKAGE = "anomalyops_tfx"
PIPELINE_FACTORY = "anomalyops_tfx.pipeline:create_pipeline"
STALE_HINT = "run `anomalyops compile-pipeline`"
# Settings that cannot change the compiled IR: alerting, ingestion, orchestration knobs read at
# run time, and secrets (the launcher reads the ML Metadata server URL at run time, so a
# password never has to sit in the compiled files).
_SETTINGS_NOT_IN_IR = frozenset(
    {"smtp", "alert_emails", "simulator", "source", "orchestration", "api_admin_key"}
)


class CompiledPipelineError(RuntimeError):
    """The compiled pipeline is missing, stale or unreadable; the message says what to run."""


@dataclasses.dataclass(frozen=True)
class CompiledPipeline:
    """Where one pipeline's compiled files live."""

    directory: Path
    name: str

    @property
    def pb_path(self) -> Path:
        return self.directory / f"{self.name}.pb"

    @property
    def json_path(self) -> Path:
        return self.directory / f"{self.name}.json"

    @property
    def fingerprint_path(self) -> Path:
        return self.directory / f"{self.name}.fingerprint.json"

    def read_record(self) -> dict[str, Any] | None:
        """The fingerprint record written at compile time, or None if there is none."""
        try:
            return json.loads(self.fingerprint_path.read_text())
        except FileNotFoundError:
            return None


@dataclasses.dataclass(frozen=True)
class Status:
    state: Literal["fresh", "stale", "missing"]
    message: str
    expected: str
    actual: str | None

    @property
    def fresh(self) -> bool:
        return self.state == "fresh"


def compiled_pipeline(settings: Settings) -> CompiledPipeline:
    return CompiledPipeline(settings.compiled_pipeline_dir, settings.pipeline_name)


# --- fingerprints ----------------------------------------------------------------------------


def _package_dir(package: str) -> Path:
    # find_spec on a top-level package locates it without executing its __init__.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CompiledPipelineError(f"pipeline package {package!r} is not importable")
    return Path(next(iter(spec.submodule_search_locations)))


def _iter_source_files(root: Path) -> Iterable[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            yield path


def compute_fingerprint(
    *,
    packages: Iterable[str] = (),
    files: Iterable[Path] = (),
    values: Mapping[str, Any] | None = None,
) -> str:
    """sha256 over package sources (names and bytes), extra files and JSON-able values."""
    digest = hashlib.sha256()
    for package in sorted(packages):
        root = _package_dir(package)
        for path in _iter_source_files(root):
            digest.update(f"{package}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    for path in files:
        path = Path(path)
        digest.update(f"file:{path}\0".encode())
        try:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        except FileNotFoundError:
            digest.update(b"<missing>")
    digest.update(json.dumps(values or {}, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def pipeline_settings_values(settings: Settings) -> dict[str, Any]:
    """The settings values the compiled IR can depend on."""
    dumped = settings.model_dump(mode="json", exclude=set(_SETTINGS_NOT_IN_IR))
    training = dumped.get("training")
    if isinstance(training, dict):
        training.pop("metadata_db_url", None)  # read at run time, see mlmd_connection_config
    dumped["mlmd_path"] = str(settings.mlmd_path)
    return dumped


def project_fingerprint(settings: Settings, *, schema_path: Path | None = None) -> str:
    """The fingerprint of the project pipeline as the current code, spec and settings define it."""
    try:
        tfx_version = importlib.metadata.version("tfx")
    except importlib.metadata.PackageNotFoundError:
        tfx_version = None
    if schema_path is None:
        from anomalyops_tfx.pipeline import default_schema_path  # light: no TFX at import

        schema_file = default_schema_path(settings)
    else:
        schema_file = Path(schema_path)
    files = [Path(settings.feature_spec_path), schema_file]
    return compute_fingerprint(
        packages=[PIPELINE_PACKAGE],
        files=files,
        values={
            "settings": pipeline_settings_values(settings),
            "tfx": tfx_version,
            "schema_path": str(schema_path) if schema_path else None,
        },
    )


def check(compiled: CompiledPipeline, expected: str) -> Status:
    """Compare the compiled files' fingerprint with ``expected``."""
    record = compiled.read_record()
    if record is None or not compiled.pb_path.exists() or not compiled.json_path.exists():
        return Status(
            "missing",
            f"compiled pipeline {compiled.name!r} not found in {compiled.directory}: {STALE_HINT}",
            expected,
            None,
        )
    actual = record.get("fingerprint")
    if actual != expected:
        return Status(
            "stale",
            f"compiled pipeline {compiled.name!r} in {compiled.directory} is stale (the pipeline "
            f"code, feature spec, schema or settings changed since it was compiled): {STALE_HINT}",
            expected,
            actual,
        )
    return Status("fresh", f"compiled pipeline {compiled.name!r} is up to date", expected, actual)


def project_status(settings: Settings) -> Status:
    """Is the project's compiled pipeline in step with its code, spec and settings?"""
    compiled = compiled_pipeline(settings)
    record = compiled.read_record() or {}
    schema = record.get("schema_path")
    return check(
        compiled, project_fingerprint(settings, schema_path=Path(schema) if schema else None)
    )


# --- compiling (imports TFX) ------------------------------------------------------------------


def compile_to_ir(pipeline: Any) -> Any:
    """Compile a ``tfx`` Pipeline object to its ``pipeline_pb2.Pipeline`` IR, as TFX's runners do."""
    from tfx.dsl.compiler.compiler import Compiler
    from tfx.dsl.components.base import base_component

    for component in pipeline.components:
        if isinstance(component, base_component.BaseComponent):
            # What tfx_runner does before compiling; a no-op unless a component packages
            # user code from a module_file (ours are referenced by dotted path).
            component._resolve_pip_dependencies(pipeline.pipeline_info.pipeline_root)
    return Compiler().compile(pipeline)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_compiled(
    ir: Any, compiled: CompiledPipeline, fingerprint: str, **record: Any
) -> CompiledPipeline:
    """Write the IR as binary proto and JSON, then the fingerprint record last.

    The record is removed first and written last, so a crash half-way leaves "missing", never a
    fresh-looking fingerprint beside a half-replaced IR.
    """
    from google.protobuf import json_format

    compiled.fingerprint_path.unlink(missing_ok=True)
    _atomic_write(compiled.pb_path, ir.SerializeToString())
    _atomic_write(compiled.json_path, json_format.MessageToJson(ir).encode())
    full_record = {"fingerprint": fingerprint, "pipeline_name": compiled.name, **record}
    _atomic_write(compiled.fingerprint_path, json.dumps(full_record, indent=2).encode())
    return compiled


def compile_project_pipeline(
    settings: Settings, *, schema_path: Path | None = None
) -> CompiledPipeline:
    """Build the project pipeline with ``create_pipeline`` and write its compiled files."""
    import datetime as dt

    from anomalyops.spec import load_spec

    module_name, func_name = PIPELINE_FACTORY.split(":")
    create_pipeline = getattr(importlib.import_module(module_name), func_name)
    spec = load_spec(settings.feature_spec_path)
    schema = str(schema_path) if schema_path else None
    pipeline = create_pipeline(settings, spec, schema_path=schema)
    ir = compile_to_ir(pipeline)
    if ir.pipeline_info.id != settings.pipeline_name:
        raise CompiledPipelineError(
            f"create_pipeline named the pipeline {ir.pipeline_info.id!r}, settings say "
            f"{settings.pipeline_name!r}"
        )
    return write_compiled(
        ir,
        compiled_pipeline(settings),
        project_fingerprint(settings, schema_path=schema_path),
        schema_path=schema,
        factory=PIPELINE_FACTORY,
        compiled_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
