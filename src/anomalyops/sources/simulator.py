"""Multivariate sensor telemetry with labelled anomalies and drift, derived from a feature spec.

Each feature is a sensor driven by a few shared latent factors (a daily cycle, a slow load
process, an ambient process), so sensors are correlated the way plant telemetry is. Levels and
spreads come from the spec's ``min``/``max``. Output is a pure function of
``(spec, day, seed, scenario, ...)``: the same day always yields the same rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from anomalyops.spec import FeatureSpec

Scenario = Literal["none", "gradual", "sudden"]
Corruption = Literal["missing_column", "nulls", "out_of_range", "type_change", "empty"]
ANOMALY_KINDS = ("spike", "level_shift", "stuck", "broken_correlation")
"""The kinds a day draws from by default."""
ALL_ANOMALY_KINDS = (*ANOMALY_KINDS, "ramp")
"""``ramp`` (a sensor drifting away over ~an hour) is opt-in (``anomaly_kinds``): adding it
to the default would change every simulated day's events."""
SCENARIOS: tuple[Scenario, ...] = ("none", "gradual", "sudden")

_N_FACTORS = 3
# Sensors sit within +-8 sigma of the spec's range, so drift and anomalies stay plausible
# (the gate is for broken data; drifted-but-valid data must still be trainable).
_SIGMAS_IN_HALF_RANGE = 8.0


MAX_ROWS_PER_DAY = 86_400_000
"""Timestamps have millisecond resolution at most, and (entity, timestamp) must be unique."""


@dataclass(frozen=True)
class SimulatorConfig:
    seed: int = 42
    rows_per_day: int = 1440
    scenario: Scenario = "none"
    drift_start: dt.date | None = None
    anomaly_rate: float = 0.01
    max_event_share: float = 1.0
    """Largest share of a day's anomalous rows one event may take. At 1.0 a single long event
    (a 45-minute stuck sensor) can fill a day's budget, and a day then shows one kind of
    anomaly; lower values give each day several events, which per-day metrics need."""
    gradual_sigma_per_day: float = 0.12
    sudden_shift_sigma: float = 3.5
    anomaly_kinds: tuple[str, ...] = ANOMALY_KINDS
    event_column: str | None = None
    """If set, the output gets this column: each row's anomaly kind ("" for normal rows), for
    per-kind recall; the label column stays as it is. Not a spec column: ingest drops it."""

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown drift scenario {self.scenario!r}; choose one of {SCENARIOS}")
        if not 1 <= self.rows_per_day <= MAX_ROWS_PER_DAY:
            raise ValueError(
                f"rows_per_day must be in [1, {MAX_ROWS_PER_DAY:_}] (one row a millisecond), "
                f"got {self.rows_per_day}"
            )
        if not 0.0 < self.max_event_share <= 1.0:
            raise ValueError(f"max_event_share must be in (0, 1], got {self.max_event_share}")
        unknown = sorted(set(self.anomaly_kinds) - set(ALL_ANOMALY_KINDS))
        if unknown or not self.anomaly_kinds:
            raise ValueError(
                f"anomaly_kinds must be a non-empty subset of {ALL_ANOMALY_KINDS}, got "
                f"{self.anomaly_kinds!r}"
            )
        if self.scenario != "none" and self.drift_start is None:
            raise ValueError(f"scenario {self.scenario!r} needs a drift_start date")


@dataclass(frozen=True)
class _Plant:
    """Per-sensor constants, fixed by the seed and the spec (not by the day)."""

    center: np.ndarray
    sigma: np.ndarray
    low: np.ndarray
    high: np.ndarray
    loadings: np.ndarray  # (features, factors)
    noise: np.ndarray
    drift_sign: np.ndarray
    drifting: np.ndarray  # bool mask of sensors that drift


def _rng(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _plant(spec: FeatureSpec, seed: int) -> _Plant:
    rng = _rng("plant", seed, spec.name, *spec.feature_names)
    n = len(spec.features)
    lows, highs = [], []
    for f in spec.features:
        low = f.min if f.min is not None else (f.max - 100.0 if f.max is not None else 0.0)
        high = f.max if f.max is not None else low + 100.0
        lows.append(low)
        highs.append(high)
    low, high = np.array(lows), np.array(highs)
    center = (low + high) / 2
    sigma = (high - low) / (2 * _SIGMAS_IN_HALF_RANGE)
    loadings = rng.normal(0.0, 1.0, size=(n, _N_FACTORS))
    loadings[:, 0] += 1.0  # every sensor follows the daily cycle a little
    loadings /= np.linalg.norm(loadings, axis=1, keepdims=True)
    drifting = np.zeros(n, dtype=bool)
    drifting[rng.permutation(n)[: max(1, n // 2)]] = True
    return _Plant(
        center=center,
        sigma=sigma,
        low=low,
        high=high,
        loadings=loadings * 1.5,
        noise=rng.uniform(0.15, 0.35, size=n),
        drift_sign=rng.choice([-1.0, 1.0], size=n),
        drifting=drifting,
    )


def _factors(day: dt.date, cfg: SimulatorConfig, seconds: np.ndarray) -> np.ndarray:
    rng = _rng("factors", cfg.seed, day.toordinal())
    n = len(seconds)
    daily = np.sin(2 * np.pi * seconds / 86_400 - np.pi / 2)
    out = [daily]
    for phi in (0.995, 0.98):
        shocks = rng.normal(0.0, np.sqrt(1 - phi**2), size=n)
        series = np.empty(n)
        series[0] = rng.normal()
        for i in range(1, n):
            series[i] = phi * series[i - 1] + shocks[i]
        out.append(series)
    return np.stack(out, axis=1)


def _drift(
    plant: _Plant, day: dt.date, cfg: SimulatorConfig
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Mean offset (in sigmas), loading sign flips, and whether the day is drifted."""
    n = len(plant.center)
    offset, flip = np.zeros(n), np.ones(n)
    if cfg.scenario == "none" or cfg.drift_start is None or day < cfg.drift_start:
        return offset, flip, False
    days_in = (day - cfg.drift_start).days + 1
    if cfg.scenario == "gradual":
        offset[plant.drifting] = (
            plant.drift_sign[plant.drifting] * cfg.gradual_sigma_per_day * days_in
        )
        offset = np.clip(offset, -4.0, 4.0)
    else:
        offset[plant.drifting] = plant.drift_sign[plant.drifting] * cfg.sudden_shift_sigma
        flip[np.argmax(plant.drifting)] = -1.0  # one sensor's relation to the load reverses
    return offset, flip, True


def simulate_day(
    spec: FeatureSpec, day: dt.date, cfg: SimulatorConfig | None = None
) -> pd.DataFrame:
    """One day of telemetry in the spec's columns (label included when the spec has one)."""
    cfg = cfg or SimulatorConfig()
    plant = _plant(spec, cfg.seed)
    # The scenario is not part of the seed: before the drift starts, all scenarios agree.
    rng = _rng("day", cfg.seed, day.toordinal())
    n_rows = cfg.rows_per_day
    step = 86_400 / n_rows
    # Whole seconds while they are unique; beyond 86,400 rows a day, milliseconds, so the
    # (entity, timestamp) key the gate checks stays unique up to 86.4 M rows.
    resolution = 1.0 if step >= 1 else 1_000.0
    seconds = np.floor(np.arange(n_rows) * step * resolution) / resolution
    factors = _factors(day, cfg, seconds)
    offset, flip, _ = _drift(plant, day, cfg)

    loadings = plant.loadings.copy()
    loadings[:, 1] *= flip
    z = factors @ loadings.T + rng.normal(size=(n_rows, len(plant.center))) * plant.noise + offset
    labels = np.zeros(n_rows, dtype=np.int8)
    kinds = np.full(n_rows, "", dtype=object)
    _inject_anomalies(
        z,
        labels,
        factors,
        loadings,
        rng,
        cfg.anomaly_rate,
        cfg.max_event_share,
        kinds=kinds,
        anomaly_kinds=tuple(cfg.anomaly_kinds),
    )

    values = np.clip(plant.center + z * plant.sigma, plant.low, plant.high)
    start = pd.Timestamp(day, tz="UTC")
    data: dict[str, object] = {spec.timestamp.column: start + pd.to_timedelta(seconds, unit="s")}
    if spec.entity:
        data[spec.entity.column] = f"{spec.name}-01"
    for j, name in enumerate(spec.feature_names):
        data[name] = np.round(values[:, j], 4)
    if spec.label:
        data[spec.label.column] = labels
    out = pd.DataFrame(data)[spec.all_columns if spec.label else spec.required_columns]
    if cfg.event_column:
        out[cfg.event_column] = kinds
    return out


def _inject_anomalies(
    z: np.ndarray,
    labels: np.ndarray,
    factors: np.ndarray,
    loadings: np.ndarray,
    rng: np.random.Generator,
    rate: float,
    max_event_share: float = 1.0,
    *,
    kinds: np.ndarray | None = None,
    anomaly_kinds: tuple[str, ...] = ANOMALY_KINDS,
) -> None:
    n_rows, n_sensors = z.shape
    budget = round(rate * n_rows)
    longest = max(1, round(budget * max_event_share))
    while labels.sum() < budget:
        kind = anomaly_kinds[rng.integers(len(anomaly_kinds))]
        sensor = rng.integers(n_sensors)
        length = {"spike": 1, "level_shift": 30, "stuck": 45, "broken_correlation": 40}.get(
            kind, 60
        )
        length = int(
            min(length * rng.uniform(0.5, 1.5), longest, max(1, budget - labels.sum()), n_rows)
        )
        start = int(rng.integers(0, n_rows - length + 1))
        window = slice(start, start + length)
        sign = rng.choice([-1.0, 1.0])
        if kind == "spike":
            z[window, sensor] += sign * rng.uniform(5.0, 7.0)
        elif kind == "level_shift":
            z[window, sensor] += sign * rng.uniform(2.5, 3.5)
        elif kind == "stuck":
            z[window, sensor] = z[start, sensor]
        elif kind == "ramp":  # slow: each row moves less than the sensor's own noise
            z[window, sensor] += sign * np.linspace(0.0, rng.uniform(2.0, 3.0), length)
        else:
            z[window, sensor] = -(factors[window] @ loadings[sensor]) + sign * 1.5
        labels[window] = 1
        if kinds is not None:
            kinds[window] = kind


def corrupt(
    df: pd.DataFrame, spec: FeatureSpec, kind: Corruption, *, seed: int = 0
) -> pd.DataFrame:
    """Break a day the way real feeds break, to exercise the quarantine path."""
    rng = _rng("corrupt", seed, kind)
    out = df.copy()
    victim = spec.feature_names[int(rng.integers(len(spec.feature_names)))]
    if kind == "missing_column":
        return out.drop(columns=[victim])
    if kind == "empty":
        return out.iloc[0:0]
    rows = rng.choice(len(out), size=max(1, len(out) // 5), replace=False)
    if kind == "nulls":
        out.loc[out.index[rows], victim] = np.nan
    elif kind == "out_of_range":
        f = spec.feature(victim)
        top = f.max if f.max is not None else float(out[victim].max())
        out.loc[out.index[rows], victim] = top + 10 * (abs(top) + 1)
    elif kind == "type_change":
        out[victim] = out[victim].map(lambda v: f"{v:.2f} units")
    else:
        raise ValueError(f"unknown corruption {kind!r}")
    return out
