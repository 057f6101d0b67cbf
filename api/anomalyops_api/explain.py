"""Why a row was flagged: its top contributing features, from the model's own parts.

Models from the detector ensemble return ``feature_contributions`` (``[rows, features]``: each
feature's share of the score, from the per-feature tail surprise and the autoencoder's
per-feature residual surprise; docs/model-contract.md). ``explain=k`` on a scoring request
names the ``k`` largest for every flagged row; unflagged rows get none.
"""

from __future__ import annotations

import numpy as np

MAX_EXPLAIN = 32
"""Upper bound of ``explain`` (a reply, not a dump of the model)."""


def top_features(
    contributions: np.ndarray, flags: np.ndarray, names: list[str], k: int
) -> list[list[tuple[str, float]] | None]:
    """For each row: ``[(feature, contribution), ...]`` (largest first) if flagged, else None."""
    k = min(k, len(names))
    out: list[list[tuple[str, float]] | None] = [None] * len(flags)
    flagged = np.flatnonzero(np.asarray(flags, dtype=bool))
    if len(flagged) == 0 or k <= 0:
        return out
    rows = np.asarray(contributions)[flagged]
    order = np.argsort(-rows, axis=1, kind="stable")[:, :k]
    for i, row, idx in zip(flagged, rows, order, strict=True):
        out[i] = [(names[j], round(float(row[j]), 4)) for j in idx]
    return out


def as_csv_cells(explained: list[list[tuple[str, float]] | None]) -> list[str | None]:
    """``"feature_1=4.21;feature_2=1.05"`` per flagged row (None: an empty cell)."""
    return [None if e is None else ";".join(f"{n}={v:g}" for n, v in e) for e in explained]


def as_records(explained: list[list[tuple[str, float]] | None]) -> list[list[dict] | None]:
    """Per row: ``[{"feature": ..., "contribution": ...}, ...]`` or None (JSON ``null``)."""
    return [
        None if e is None else [{"feature": n, "contribution": v} for n, v in e] for e in explained
    ]
