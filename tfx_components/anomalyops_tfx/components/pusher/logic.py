"""Version numbering, the contract's metadata, the temp-dir-then-rename publish and the
retention of old versions. No TFX."""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

METADATA_FILE = "anomalyops_model.json"
CONTRACT_METRICS = ("auc_pr", "f1", "false_alarm_rate", "missed_alarm_rate")
TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
MAX_VERSION_BUMPS = 1000
"""Pushes racing for the same version number each take the next free one; this bounds it."""

_VERSION_RE = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() accepts '²' and '٣'


class PushError(RuntimeError):
    pass


def is_version_name(name: str) -> bool:
    """A version directory's name: ASCII digits only (``re.fullmatch``, so no trailing ``\\n``)."""
    return _VERSION_RE.fullmatch(name) is not None


def existing_versions(serving_dir: str | Path) -> list[int]:
    """Integer-named version directories (temp dirs and other names do not count)."""
    root = Path(serving_dir)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and is_version_name(p.name))


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
        metadata["evaluation_report"] = evaluation_report
    return metadata


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
        if not (tmp / "saved_model.pb").exists():
            raise PushError(f"the model writer left no saved_model.pb in {tmp}")
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


def versions_in_use(
    api_url: str, *, admin_key: str | None, timeout_s: float = 10.0, client=None
) -> set[int]:
    """The versions the scoring service serves and has pinned (``GET /v1/models``).

    Raises on any failure: retention must not guess which versions are safe to delete.
    """
    import httpx

    headers = {"X-API-Key": admin_key} if admin_key else {}
    reply = (client or httpx).get(
        f"{api_url.rstrip('/')}/v1/models", headers=headers, timeout=timeout_s
    )
    reply.raise_for_status()
    listing = reply.json()
    in_use = {listing.get("active_version"), listing.get("pinned_version")}
    in_use |= {v.get("version") for v in listing.get("versions", []) if v.get("state") == "serving"}
    return {v for v in in_use if isinstance(v, int)}


def prune_versions(
    serving_dir: str | Path,
    *,
    keep: int,
    protected: Iterable[int] = (),
    stale_tmp_s: float = 86400.0,
    now: float | None = None,
) -> list[int]:
    """Delete all but the newest ``keep`` versions and the ``protected`` ones; return them.

    A version is first renamed to ``.trash-<version>-<random>`` (readers stop seeing it at
    once, never half-deleted), then removed. Temp dirs of pushes that died more than
    ``stale_tmp_s`` ago, and trash a crash left behind, go too.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1 (the version just pushed), got {keep}")
    root = Path(serving_dir)
    versions = existing_versions(root)
    keep_set = set(versions[-keep:]) | set(protected)
    removed = []
    for version in versions:
        if version in keep_set:
            continue
        trash = Path(tempfile.mkdtemp(prefix=f"{TRASH_PREFIX}{version}-", dir=root))
        os.rename(root / str(version), trash / "model")
        shutil.rmtree(trash)
        removed.append(version)
    now = time.time() if now is None else now
    for entry in root.iterdir() if root.is_dir() else ():
        stale_tmp = entry.name.startswith(TMP_PREFIX) and now - entry.stat().st_mtime > stale_tmp_s
        if entry.is_dir() and (stale_tmp or entry.name.startswith(TRASH_PREFIX)):
            shutil.rmtree(entry, ignore_errors=True)
    if removed:
        fsync_dir(root)
        log.info(
            "retention: removed versions %s from %s (kept the newest %d and %s)",
            removed,
            root,
            keep,
            sorted(set(protected)) or "no pinned or served ones",
        )
    return removed


def apply_retention(serving_dir: Path, pushed_version: int) -> list[int]:
    """Delete old versions after a successful push; never fails the push.

    Settings are read at run time (the admin key must not land in the IR or ML Metadata).
    Versions the scoring service serves or has pinned are kept; if it is configured but
    cannot say which those are, nothing is deleted this time.
    """
    from anomalyops.settings import get_settings

    settings = get_settings()
    protected = {pushed_version}
    if settings.api_url:
        key = settings.api_admin_key.get_secret_value() if settings.api_admin_key else None
        try:
            protected |= versions_in_use(settings.api_url, admin_key=key)
        except Exception as exc:  # any failure means: unknown pins, delete nothing
            log.warning(
                "Retention skipped: could not ask %s which versions it serves or has pinned "
                "(%s); nothing deleted",
                settings.api_url,
                exc,
            )
            return []
    try:
        return prune_versions(
            serving_dir,
            keep=settings.serving_keep_versions,
            protected=protected,
            stale_tmp_s=settings.serving_stale_tmp_s,
        )
    except OSError as exc:
        log.error("Retention failed in %s (the push itself succeeded): %s", serving_dir, exc)
        return []
