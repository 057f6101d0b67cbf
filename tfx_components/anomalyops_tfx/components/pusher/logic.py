"""Version numbering and the retention of old versions. No TFX.

The contract itself (file names, metadata, the atomic :func:`publish`) lives in
:mod:`anomalyops.model_contract`, shared with the scoring API.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from anomalyops.model_contract import TMP_PREFIX, fsync_dir, is_version_name

log = logging.getLogger(__name__)

TRASH_PREFIX = ".trash-"


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
