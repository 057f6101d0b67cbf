"""Temporal context from the feature spec: lag and rolling columns, per entity, in time order.

One implementation for both sides: ingest materialises the derived columns when a day enters
the lake (with the previous day's last rows as history, so day boundaries are seamless), and
the scoring API computes them with the same functions before calling the model. Rows are
ordered by (entity, timestamp); a value needs ``Temporal.history`` preceding rows of its own
entity, and a row without them is *not ready* (its derived value is missing, and :class:`Gap`
says which entity, column and how many rows were missing). A missing raw value makes the
derived values whose window holds it missing too (Transform imputes them like any null).
numpy/pandas only: the API imports this without TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer

from anomalyops.spec import FeatureSpec

__all__ = [
    "DerivedFrame",
    "Gap",
    "TemporalError",
    "TemporalGapError",
    "TemporalStream",
    "add_derived",
    "chunk_inputs",
    "derive",
    "tail",
]


class TemporalError(ValueError):
    """The rows cannot be put in time order (a bad timestamp, or rows out of order)."""


@dataclass(frozen=True)
class Gap:
    """The first row of an entity that lacks history for a derived column."""

    entity: str | None
    column: str
    needed: int
    available: int
    row: int
    """0-based position of the row in the frame passed in."""

    def describe(self) -> str:
        who = f"entity {self.entity!r}" if self.entity is not None else "the file"
        return (
            f"{who}: column {self.column!r} needs {self.needed} preceding rows of the same "
            f"entity; row {self.row + 1} has {self.available}"
        )


@dataclass
class DerivedFrame:
    values: pd.DataFrame
    """The derived columns (float64), in the input frame's row order and index."""
    ready: np.ndarray
    """True where every derivation had enough history."""
    gaps: list[Gap] = field(default_factory=list)
    """Per entity, the first row lacking history for the derivation needing the most."""


def derive(
    spec: FeatureSpec, frame: pd.DataFrame, history: pd.DataFrame | None = None
) -> DerivedFrame:
    """Compute ``spec.derived_columns`` for ``frame``; ``history`` holds earlier rows (any
    order, same columns) that serve as context only."""
    derived = spec.derived_columns
    n = len(frame)
    if not derived:
        return DerivedFrame(pd.DataFrame(index=frame.index), np.ones(n, dtype=bool))
    sources = sorted({d.feature for d in derived})
    columns = [*spec.key_columns, *sources]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise TemporalError(f"temporal derivations need columns {missing}")
    parts = [frame[columns].reset_index(drop=True)]
    n_hist = 0
    if history is not None and len(history):
        n_hist = len(history)
        parts.insert(0, history[columns].reset_index(drop=True))
    rows = pd.concat(parts, ignore_index=True) if n_hist else parts[0]
    times = _times(rows[spec.timestamp.column], spec.timestamp.column, offset=-n_hist)
    if spec.entity:
        entity = rows[spec.entity.column].astype(str).where(rows[spec.entity.column].notna())
        codes, uniques = pd.factorize(entity, use_na_sentinel=False)
    else:
        codes, uniques = np.zeros(len(rows), dtype=np.int64), np.array([None], dtype=object)
    order = np.lexsort((times, codes))  # stable: equal timestamps keep their input order
    group = codes[order]
    starts = np.r_[True, group[1:] != group[:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
    position = np.arange(len(order)) - first  # rows of the same entity before this one

    out: dict[str, np.ndarray] = {}
    ready = np.ones(len(order), dtype=bool)
    for d in derived:
        x = pd.Series(rows[d.feature].to_numpy(dtype=np.float64)[order])
        t = d.temporal
        if t.kind == "diff":
            value = (x - x.shift(t.rows)).to_numpy()
        else:
            window = x.rolling(_EntityWindow(window_size=t.rows, first=first), min_periods=t.rows)
            if t.kind == "rolling_std":
                value = window.std(ddof=0).to_numpy()
            else:
                value = (x - window.mean()).to_numpy()
        enough = position >= t.history
        # The unmasked value spans the previous entity's rows: never let it through.
        value = np.where(enough, value, np.nan)
        ready &= enough
        back = np.empty(len(order), dtype=np.float64)
        back[order] = value
        out[d.name] = back[n_hist:]
    ready_in = np.empty(len(order), dtype=bool)
    ready_in[order] = ready
    ready_in = ready_in[n_hist:]
    values = pd.DataFrame(out, index=frame.index)
    return DerivedFrame(values, ready_in, _gaps(spec, order, position, codes, uniques, n_hist))


class _EntityWindow(BaseIndexer):
    """The last ``window_size`` rows, cut at the entity's first row. Cutting (not only masking
    the result) restarts pandas' running sums at each entity, so one entity's values never
    leak into another's, not even as rounding (a large-valued entity before a small one)."""

    def get_window_bounds(
        self, num_values=0, min_periods=None, center=None, closed=None, step=None
    ):
        end = np.arange(1, num_values + 1, dtype=np.int64)
        start = np.maximum(end - self.window_size, self.first).astype(np.int64)
        return start, end


def _gaps(spec, order, position, codes, uniques, n_hist) -> list[Gap]:
    worst = max(spec.derived_columns, key=lambda d: d.temporal.history)
    need = worst.temporal.history
    lacking = (position < need) & (order >= n_hist)
    gaps = []
    seen: set[int] = set()
    for i in np.flatnonzero(lacking):
        code = int(codes[order[i]])
        if code in seen:
            continue
        seen.add(code)
        entity = uniques[code] if spec.entity else None
        entity = None if entity is None or entity is np.nan else str(entity)
        gaps.append(Gap(entity, worst.name, need, int(position[i]), int(order[i]) - n_hist))
    return sorted(gaps, key=lambda g: g.row)


def _times(column: pd.Series, name: str, *, offset: int) -> np.ndarray:
    """Timestamps as int64 nanoseconds (UTC); a TemporalError names the first bad row."""
    try:
        parsed = pd.to_datetime(column, utc=True, errors="coerce")
    except (TypeError, ValueError) as exc:
        raise TemporalError(f"column {name!r}: not timestamps ({exc})") from None
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        where = f"row {i + offset + 1}" if i + offset >= 0 else "a history row"
        raise TemporalError(
            f"{where}, column {name!r}: {column.iloc[i]!r} is not a timestamp; temporal "
            "derivations order each entity's rows by it"
        )
    return parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)


def add_derived(
    spec: FeatureSpec, frame: pd.DataFrame, history: pd.DataFrame | None = None
) -> pd.DataFrame:
    """``frame`` with the derived columns appended (missing where history is lacking)."""
    if not spec.derived_columns:
        return frame
    result = derive(spec, frame, history)
    return pd.concat(
        [frame.drop(columns=list(result.values.columns), errors="ignore"), result.values], axis=1
    )


def tail(spec: FeatureSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The last ``spec.history_rows`` rows of each entity in time order: the history the next
    rows need (empty when the spec has no derivations)."""
    keep = spec.history_rows
    columns = [*spec.key_columns, *sorted({d.feature for d in spec.derived_columns})]
    if not keep or frame.empty:
        return frame.iloc[0:0][[c for c in columns if c in frame.columns]]
    rows = frame[columns].reset_index(drop=True)
    times = _times(rows[spec.timestamp.column], spec.timestamp.column, offset=0)
    rows = rows.assign(_t=times).sort_values("_t", kind="stable")
    if spec.entity:
        rows = rows.groupby(rows[spec.entity.column].astype(str), sort=False).tail(keep)
    else:
        rows = rows.tail(keep)
    return rows.drop(columns="_t").reset_index(drop=True)


class TemporalStream:
    """:func:`derive` over consecutive chunks of one upload, each chunk's history being the
    tail of the rows before it. Each entity's rows must come in time order across chunks."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._tail: pd.DataFrame | None = None
        self._last: dict[str, int] = {}

    def next(self, frame: pd.DataFrame, offset: int = 0) -> DerivedFrame:
        """Derived columns for the next chunk; ``offset`` is its first row's index in the
        upload (0-based), so gaps and errors name upload rows."""
        spec = self.spec
        ts = spec.timestamp.column
        times = _times(frame[ts], ts, offset=offset)
        # Parsed once here: derive() and tail() then get datetimes, which cost nothing to parse.
        frame = frame.assign(**{ts: pd.to_datetime(times, utc=True)})
        self._check_order(frame, times, offset)
        result = derive(spec, frame, self._tail)
        result.gaps = [
            Gap(g.entity, g.column, g.needed, g.available, g.row + offset) for g in result.gaps
        ]
        both = frame if self._tail is None else pd.concat([self._tail, frame], ignore_index=True)
        self._tail = tail(spec, both)
        return result

    def _check_order(self, frame: pd.DataFrame, times: np.ndarray, offset: int) -> None:
        entities = (
            frame[self.spec.entity.column].astype(str).to_numpy()
            if self.spec.entity
            else np.full(len(frame), "")
        )
        rows = pd.DataFrame({"e": entities, "t": times})
        earliest = rows.groupby("e", sort=False)["t"].idxmin()
        for entity, i in earliest.items():
            last = self._last.get(str(entity))
            if last is not None and times[i] < last:
                who = f"entity {entity!r}" if self.spec.entity else "the file"
                raise TemporalError(
                    f"row {offset + int(i) + 1}: {who} goes back in time after earlier rows; "
                    "send each entity's rows in timestamp order (temporal derivations use the "
                    "preceding rows)"
                )
        latest = pd.Series(times).groupby(entities, sort=False).max()
        self._last.update({str(k): int(v) for k, v in latest.items()})


class TemporalGapError(TemporalError):
    """A row lacks the preceding rows a derived column needs."""

    def __init__(self, gap: Gap) -> None:
        self.gap = gap
        super().__init__(
            f"{gap.describe()}: send at least {gap.needed} earlier rows of each entity before "
            "the rows to score, and warmup=true to get those first rows back unscored "
            "(anomaly_score and is_anomaly null)"
        )


def chunk_inputs(
    stream: TemporalStream,
    keys: dict[str, np.ndarray],
    features: dict[str, np.ndarray],
    offset: int,
    *,
    warmup: bool,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The model's float32 inputs for one chunk of an upload (features plus derived columns)
    and the mask of rows that can be scored. Without ``warmup`` a row lacking history raises
    :class:`TemporalGapError`; with it, such rows get 0 inputs and must be reported unscored."""
    frame = pd.DataFrame({**keys, **features})
    result = stream.next(frame, offset)
    if result.gaps and not warmup:
        raise TemporalGapError(result.gaps[0])
    inputs = dict(features)
    for name in result.values.columns:
        inputs[name] = np.nan_to_num(result.values[name].to_numpy(np.float32), nan=0.0)
    return inputs, result.ready
