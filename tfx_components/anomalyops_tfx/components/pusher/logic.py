"""Version numbering, the contract's metadata, and the temp-dir-then-rename publish. No TFX."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

METADATA_FILE = "anomalyops_model.json"
CONTRACT_METRICS = ("auc_pr", "f1", "false_alarm_rate", "missed_alarm_rate")
TMP_PREFIX = ".tmp-"


class PushError(RuntimeError):
    pass


def existing_versions(serving_dir: str | Path) -> list[int]:
    """Integer-named version directories (temp dirs and other names do not count)."""
    root = Path(serving_dir)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(serving_dir: str | Path, now: float) -> int:
    """UNIX seconds of ``now``, bumped past every existing version (clock skew, fast re-runs)."""
    versions = existing_versions(serving_dir)
    return max(int(now), versions[-1] + 1 if versions else 0)


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
) -> dict:
    """``anomalyops_model.json`` exactly as docs/model-contract.md describes it."""
    return {
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


def publish(
    serving_dir: str | Path,
    version: int,
    write_model: Callable[[Path], None],
    metadata: dict,
) -> Path:
    """Write ``.tmp-<version>/`` (model via ``write_model``, then metadata), rename to ``<version>/``.

    The rename is the commit: a reader never sees a partial version directory. On failure the
    temp dir is removed and the serving directory is as it was.
    """
    root = Path(serving_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / str(version)
    if final.exists():
        raise PushError(f"version {version} already exists at {final}; refusing to overwrite")
    tmp = root / f"{TMP_PREFIX}{version}"
    if tmp.exists():
        log.warning("Removing a stale temp dir from an interrupted push: %s", tmp)
        shutil.rmtree(tmp)
    try:
        write_model(tmp)
        if not (tmp / "saved_model.pb").exists():
            raise PushError(f"the model writer left no saved_model.pb in {tmp}")
        with open(tmp / METADATA_FILE, "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
