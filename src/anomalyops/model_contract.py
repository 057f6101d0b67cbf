"""The served-model contract: what the Pusher publishes and the scoring API reads.

One place for a version directory's file names, the signature and its outputs, the metadata
file (:class:`ModelMetadata`) and :func:`publish`, the atomic way a version appears.
docs/model-contract.md describes it; tests/unit/test_model_contract.py keeps the two in step.
No TensorFlow, TFX or Airflow here: the scoring API imports this module.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# -- layout of <serving_model_dir>/<version>/ ------------------------------------------------

SAVED_MODEL_FILE = "saved_model.pb"
VARIABLES_INDEX_FILE = "variables/variables.index"
METADATA_FILE = "anomalyops_model.json"
REQUIRED_FILES = (SAVED_MODEL_FILE, VARIABLES_INDEX_FILE, METADATA_FILE)
"""A version directory is complete when all of these exist."""
EVALUATION_REPORT_FILE = "evaluation_report.html"
"""Optional: the evaluation gate's HTML report, named in the metadata's ``evaluation_report``."""
TMP_PREFIX = ".tmp-"
"""Private temp dirs of pushes in progress (``.tmp-<version>-<random>/``); never versions."""

# ASCII digits only (str.isdigit() accepts '²' and '٣'); matched with fullmatch, because '$'
# also matches before a trailing newline and a directory named "12\n" would alias version 12.
_VERSION_RE = re.compile(r"[0-9]+")


def is_version_name(name: str) -> bool:
    """A version directory's name: ASCII digits only (``re.fullmatch``, so no trailing ``\\n``)."""
    return _VERSION_RE.fullmatch(name) is not None


# -- signature -------------------------------------------------------------------------------

SIGNATURE = "serving_default"
SCORE_OUTPUT = "anomaly_score"
THRESHOLD_OUTPUT = "threshold"
FLAG_OUTPUT = "is_anomaly"
OUTPUT_DTYPES = {SCORE_OUTPUT: "float32", THRESHOLD_OUTPUT: "float32", FLAG_OUTPUT: "bool"}
"""Required outputs, shape ``[None]``, by TensorFlow dtype name."""
OUTPUTS = tuple(OUTPUT_DTYPES)
EXPLANATION_OUTPUT = "feature_contributions"
"""Optional output ``[rows, model_columns]`` float32: each input's share of the score (models
from the detector ensemble on; older models lack it, so readers must not require it)."""
EXPLANATION_DTYPE = "float32"

# -- metadata (anomalyops_model.json) --------------------------------------------------------

CONTRACT_METRICS = ("auc_pr", "f1", "false_alarm_rate", "missed_alarm_rate")
EVALUATION_REPORT_FIELD = "evaluation_report"
"""Optional metadata key naming :data:`EVALUATION_REPORT_FILE`. Not a declared field of
:class:`ModelMetadata` but an extra one, so versions without it read and serialize as before."""


class ModelMetadata(BaseModel):
    """``anomalyops_model.json`` as readers see it.

    Lenient on purpose: fields that older versions lack are optional, and unknown fields are
    kept (``extra="allow"``) so a newer Pusher never breaks an older reader.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    model_name: str
    version: int
    created_at: str | None = None
    training_spans: list[str] = []
    threshold: float
    threshold_quantile: float | None = None
    metrics: dict[str, float | None] = {}
    feature_spec: dict[str, Any] = Field(description="The full feature spec the model expects.")
    feature_spec_fingerprint: str | None = None
    pipeline_run_id: str | None = None


def contract_metrics(metrics: dict) -> dict[str, float]:
    """The contract's four metrics when evaluation had labels, else ``{}``."""
    out = {}
    for key in CONTRACT_METRICS:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and value == value:  # not None, not NaN
            out[key] = float(value)
    return out if "auc_pr" in out else {}


def build_metadata(
    *,
    model_name: str,
    version: int,
    created_at: dt.datetime,
    training_spans: list[str],
    threshold: float,
    threshold_quantile: float,
    metrics: dict,
    feature_spec: dict,
    feature_spec_fingerprint: str,
    pipeline_run_id: str | None,
    evaluation_report: str | None = None,
) -> dict:
    """``anomalyops_model.json`` exactly as docs/model-contract.md describes it.

    ``evaluation_report``: the gate's HTML report's file name inside the version directory,
    recorded only when the push carries one (older blessings have none).
    """
    metadata = {
        "model_name": model_name,
        "version": int(version),
        "created_at": created_at.astimezone(dt.timezone.utc).isoformat(timespec="seconds"),
        "training_spans": list(training_spans),
        "threshold": float(threshold),
        "threshold_quantile": float(threshold_quantile),
        "metrics": contract_metrics(metrics),
        "feature_spec": feature_spec,
        "feature_spec_fingerprint": feature_spec_fingerprint,
        "pipeline_run_id": pipeline_run_id,
    }
    if evaluation_report is not None:
        metadata[EVALUATION_REPORT_FIELD] = evaluation_report
    return metadata


# -- publishing a version --------------------------------------------------------------------

MAX_VERSION_BUMPS = 1000
"""Pushes racing for the same version number each take the next free one; this bounds it."""


class PushError(RuntimeError):
    pass


def _fsync_tree(root: Path) -> None:
    """Flush every file and directory under ``root`` (TensorFlow does not fsync what it saves)."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable (local filesystems)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_metadata(path: Path, metadata: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2)
        f.flush()
        os.fsync(f.fileno())


def _check_extra_name(name: str, model_dir: Path) -> None:
    """An extra file is a plain new name in the version dir: no path, no clash with the model."""
    if (
        not name
        or name != os.path.basename(name)
        or name in (".", "..", METADATA_FILE)
        or "\\" in name
        or (model_dir / name).exists()
    ):
        raise PushError(f"refusing extra file name {name!r} in a version directory")


def publish(
    serving_dir: str | Path,
    version: int,
    write_model: Callable[[Path], None],
    metadata: dict,
    files: Mapping[str, bytes] | None = None,
) -> Path:
    """Write the model and its metadata in a private temp dir, then rename it to ``<version>/``.

    The rename is the commit: a reader never sees a partial version directory. The temp dir
    (``.tmp-<version>-<random>/``) is unique, so two pushes in the same second never share
    it; if ``<version>/`` exists (or appears meanwhile) the next free number is taken and the
    metadata's ``version`` follows. Everything is fsynced before the rename and the serving
    directory after it, so a power cut cannot leave a named but empty version. On failure the
    temp dir is removed and the serving directory is as it was.

    ``files`` (plain file name -> content, e.g. the evaluation report) are written beside the
    model before the rename, so they appear with it, never after it.
    """
    root = Path(serving_dir)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{version}-", dir=root))
    tmp = staging / "model"
    metadata = dict(metadata)
    try:
        write_model(tmp)
        if not (tmp / SAVED_MODEL_FILE).exists():
            raise PushError(f"the model writer left no {SAVED_MODEL_FILE} in {tmp}")
        for name, content in (files or {}).items():
            _check_extra_name(name, tmp)
            (tmp / name).write_bytes(content)
        _fsync_tree(tmp)
        for _ in range(MAX_VERSION_BUMPS):
            final = root / str(version)
            if final.exists():
                version += 1
                continue
            metadata["version"] = version
            _write_metadata(tmp / METADATA_FILE, metadata)
            try:
                os.rename(tmp, final)  # fails on a non-empty target: never overwrites
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                version += 1  # another push took this number between the check and now
                continue
            fsync_dir(root)
            break
        else:
            raise PushError(f"no free version number in {MAX_VERSION_BUMPS} tries above {version}")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    staging.rmdir()
    return final
