"""Bring your own data: infer a feature spec from a table and split history into daily files.

A user with an existing export (and no daily feed yet) gets a spec to review and one landing
file per day, which the normal DAGs then ingest, validate and train on.
"""

from __future__ import annotations

import datetime as dt
import io
import math

import numpy as np
import pandas as pd

from anomalyops.lake import Lake
from anomalyops.sources.arrival import write_marker
from anomalyops.spec import FeatureSpec, parse_spec


def infer_spec(
    df: pd.DataFrame,
    *,
    name: str,
    timestamp: str = "timestamp",
    label: str | None = None,
    entity: str | None = None,
    margin: float = 0.25,
) -> FeatureSpec:
    """A spec whose features are the numeric columns, ranges widened by ``margin`` of the span.

    The ranges are a starting point for review: the gate rejects values outside them.
    """
    skip = {timestamp, label, entity}
    features = []
    for column in df.columns:
        if column in skip or not pd.api.types.is_numeric_dtype(df[column]):
            continue
        lo, hi = float(df[column].min()), float(df[column].max())
        pad = (hi - lo) * margin or max(abs(lo), 1.0) * margin
        features.append(
            {"name": _identifier(column), "min": _round(lo - pad), "max": _round(hi + pad)}
        )
    if not features:
        raise ValueError("no numeric columns to use as features")
    data: dict = {
        "name": _identifier(name),
        "timestamp": {"column": timestamp},
        "features": features,
    }
    if label:
        data["label"] = {"column": label}
    if entity:
        data["entity"] = {"column": entity}
    return parse_spec(data, source=f"inferred from {name}")


def split_into_days(
    df: pd.DataFrame,
    spec: FeatureSpec,
    *,
    start: dt.date | None = None,
    rows_per_day: int | None = None,
) -> dict[dt.date, pd.DataFrame]:
    """Group rows by the UTC date of the spec's timestamp column.

    A table without that column (e.g. a benchmark matrix) gets synthetic timestamps from
    ``start``, ``rows_per_day`` evenly spaced rows a day, in the table's order.
    """
    ts = spec.timestamp.column
    out = df.copy()
    if ts not in out.columns:
        if start is None or not rows_per_day:
            raise ValueError(f"the table has no {ts!r} column: pass start and rows_per_day")
        i = np.arange(len(out))
        seconds = (i % rows_per_day) * (86_400 // rows_per_day)
        days = i // rows_per_day
        base = pd.Timestamp(start, tz="UTC")
        out.insert(
            0, ts, base + pd.to_timedelta(days, unit="D") + pd.to_timedelta(seconds, unit="s")
        )
    else:
        out[ts] = pd.to_datetime(out[ts], utc=True)
    return {
        day: group.reset_index(drop=True) for day, group in out.groupby(out[ts].dt.date, sort=True)
    }


def write_landing(
    lake: Lake,
    days: dict[dt.date, pd.DataFrame],
    *,
    name: str = "history.parquet",
    ready_marker: str | None = "_READY",
) -> list[str]:
    """Drop one Parquet file per day into ``landing/<date>/``, then its ``ready_marker`` (the
    day is complete: ingest need not wait for a quiet period); returns the written paths."""
    paths = []
    for day, frame in days.items():
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        folder = lake.landing_path(day)
        lake.fs.makedirs(folder, exist_ok=True)
        tmp, final = f"{folder}/.{name}.tmp", f"{folder}/{name}"
        with lake.fs.open(tmp, "wb") as f:
            f.write(buf.getvalue())
        lake.fs.mv(tmp, final)
        write_marker(lake, day, ready_marker)
        paths.append(lake.uri(final))
    return paths


def _identifier(text: str) -> str:
    ident = "".join(c if c.isalnum() or c == "_" else "_" for c in str(text))
    return ident if ident and not ident[0].isdigit() else f"f_{ident}"


def _round(x: float) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    digits = max(0, 3 - math.floor(math.log10(abs(x))))
    return round(x, digits)
