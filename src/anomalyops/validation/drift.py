"""Drift scores calibrated to the data: "is this day unlikely under no drift, at its size?".

A day is compared with a *reference*: the pooled recent validated days of the current regime.
Per feature, two two-sample Kolmogorov-Smirnov tests:

- ``ks_2samp``: the feature's marginal distribution (a level or spread that moved);
- ``ks_2samp_residual``: what is left of the feature after a linear fit on the other features
  (fitted on the reference). A sensor that walks away from the sensors it used to move with
  shows here long before its marginal leaves the range of ordinary days, because shared causes
  (load, weather, time of day) are explained away.

The KS null assumes independent rows, and its critical value ``~ sqrt(1/n + 1/m)`` accounts
for both sample sizes. Real days are autocorrelated (slow processes make whole days differ),
so each test's null is calibrated on the reference itself: every reference day against the
other reference days shows what "a day of no drift" produces. The null is sampling noise
(Kolmogorov) plus a between-day component whose size is estimated from those ``k`` days
(an F(1, k) factor, so few reference days mean wide margins); on i.i.d. days the component is
zero and the test is the exact KS test (:func:`ks_p_value`). p-values are Bonferroni-corrected
over all tests of the day. Categorical columns get a chi-squared homogeneity test, its scale
calibrated the same way. With fewer than ``min_calibration_days`` reference days the between-day
component is unknown: only a large effect counts then.

A feature *drifted* when its corrected p-value is below ``alpha`` and its statistic reaches
the feature's minimum effect. A day *restarts the training window* when a marginal test both
drifted and reached ``restart_statistic`` (a KS statistic is sample-size independent: 0.5
means half of one day's mass lies beyond the other's), so a sudden step restarts on its first
day and sampling noise never does. The between-day model is fitted on D's location scale
(:func:`location_scale`), where whole-day shifts add up, not on D, which saturates at 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from anomalyops.settings import Settings

KS, KS_RESIDUAL, CHI2 = "ks_2samp", "ks_2samp_residual", "chi2_contingency"
METHOD = (
    "per feature: two-sample KS of the marginal and of the residual given the other features, "
    "vs the pooled reference days; null calibrated on the reference days; Bonferroni over tests"
)
_KOLMOGOROV_MEAN_SQUARE = math.pi**2 / 12  # E[K^2] of the Kolmogorov distribution
_RIDGE = 1e-3  # keeps the residual fit defined when features are collinear or constant


@dataclass(frozen=True)
class DriftConfig:
    alpha: float = 0.01
    """Family-wise false-warning rate per day (Bonferroni over every test of the day)."""
    min_calibration_days: int = 3
    """Reference days needed to calibrate the null on the data; fewer: the i.i.d. KS null."""
    restart_statistic: float | None = 0.5
    """Marginal KS statistic of a drifted feature at which the day starts a new regime."""
    uncalibrated_min_effect: float = 0.7
    """Before ``min_calibration_days`` exist, only a shift this large (KS) counts as drift."""
    residual_test: bool = True
    """Also test each feature given the others (needs at least two features)."""


def config_from(settings: Settings) -> DriftConfig:
    """The gate's drift configuration (validation settings + the training window's restart)."""
    v = settings.validation
    return DriftConfig(
        alpha=v.drift_alpha,
        min_calibration_days=v.drift_min_calibration_days,
        restart_statistic=settings.training.window_restart_drift_score,
        uncalibrated_min_effect=v.drift_uncalibrated_min_effect,
        residual_test=v.drift_residual_test,
    )


@dataclass(frozen=True)
class _Test:
    feature: str
    comparator: str
    statistic: float
    """KS D (or the L-infinity distance of category frequencies for chi2)."""
    raw: float
    """The quantity the null is calibrated on: ``location_scale(D)^2 n_eff`` for KS,
    chi2 / dof for chi2."""
    dof: int
    n: int
    m: int


def ks_statistic(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sample KS statistic; ties (discrete features) are handled exactly."""
    x, y = np.sort(x), np.sort(y)
    if len(x) == 0 or len(y) == 0:
        return float("nan")
    points = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, points, side="right") / len(x)
    cdf_y = np.searchsorted(y, points, side="right") / len(y)
    return float(np.max(np.abs(cdf_x - cdf_y)))


def _n_eff(n: int, m: int) -> float:
    return n * m / (n + m)


_MAX_D = 1.0 - 1e-9  # complete separation: a finite (huge) location scale


def location_scale(d: float) -> float:
    """KS D as the normal location shift giving it, over sqrt(2 pi) (= D for small D).

    Whole-day shifts add up linearly in location, not in D (which saturates at 1): the
    between-day model is fitted on this scale, so a step far beyond the days' wander is
    not squeezed to "D is near 1, like a large ordinary day".
    """
    return 2.0 * float(stats.norm.ppf((1.0 + min(d, _MAX_D)) / 2.0)) / math.sqrt(2 * math.pi)


def _ks_test(feature: str, comparator: str, x: np.ndarray, y: np.ndarray) -> _Test | None:
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if len(x) == 0 or len(y) == 0:
        return None
    d = ks_statistic(x, y)
    raw = location_scale(d) ** 2 * _n_eff(len(x), len(y))
    return _Test(feature, comparator, d, raw, 0, len(x), len(y))


def _chi2_test(feature: str, x: pd.Series, y: pd.Series) -> _Test | None:
    x, y = x.dropna().astype(str), y.dropna().astype(str)
    if len(x) == 0 or len(y) == 0:
        return None
    table = pd.concat(
        [x.value_counts().rename("day"), y.value_counts().rename("ref")], axis=1
    ).fillna(0)
    linf = float((table["day"] / len(x) - table["ref"] / len(y)).abs().max())
    dof = len(table) - 1
    if dof == 0:  # one category on both sides: nothing can differ
        return _Test(feature, CHI2, 0.0, 0.0, 0, len(x), len(y))
    chi2 = float(stats.chi2_contingency(table.to_numpy().T, correction=False)[0])
    return _Test(feature, CHI2, linf, chi2 / dof, dof, len(x), len(y))


class _Residualizer:
    """Each feature minus its linear prediction from the others, fitted on the reference."""

    def __init__(self, reference: pd.DataFrame, features: Sequence[str]):
        data = reference[list(features)].to_numpy(dtype=float)
        data = data[~np.isnan(data).any(axis=1)]
        self.features = list(features)
        self.usable = len(self.features) >= 2 and len(data) > 2 * len(self.features) + 2
        if not self.usable:
            return
        self.mean = data.mean(axis=0)
        std = data.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)
        z = (data - self.mean) / self.std
        cov = np.cov(z, rowvar=False) + _RIDGE * np.eye(z.shape[1])
        # The residual of feature j regressed on the rest is (z @ P)_j / P_jj, P = cov^-1.
        precision = np.linalg.inv(cov)
        self.weights = precision / np.diag(precision)

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        z = (frame[self.features].to_numpy(dtype=float) - self.mean) / self.std
        return z @ self.weights  # rows with a missing value come out NaN and are dropped


def _tests(
    day: pd.DataFrame,
    reference: pd.DataFrame,
    features: Sequence[str],
    categorical: Sequence[str],
    residualize: _Residualizer | None,
) -> list[_Test]:
    out: list[_Test | None] = []
    for name in features:
        out.append(
            _ks_test(
                name,
                KS,
                day[name].to_numpy(dtype=float),
                reference[name].to_numpy(dtype=float),
            )
        )
    if residualize is not None:
        rd, rr = residualize(day), residualize(reference)
        for j, name in enumerate(residualize.features):
            out.append(_ks_test(name, KS_RESIDUAL, rd[:, j], rr[:, j]))
    for name in categorical:
        out.append(_chi2_test(name, day[name], reference[name]))
    return [t for t in out if t is not None]


def _null_spreads(
    reference_days: Sequence[pd.DataFrame],
    features: Sequence[str],
    categorical: Sequence[str],
    residualize: _Residualizer | None,
    cfg: DriftConfig,
) -> dict[tuple[str, str], list[_Test]]:
    """Per test, each reference day's test against the other reference days.

    The residual fit stays the whole reference's, held-out day included: a slight in-sample
    advantage, small against thousands of rows, and it saves a fit per day.
    """
    if len(reference_days) < max(2, cfg.min_calibration_days):
        return {}
    out: dict[tuple[str, str], list[_Test]] = {}
    for j, held_out in enumerate(reference_days):
        rest = pd.concat([d for i, d in enumerate(reference_days) if i != j], ignore_index=True)
        for t in _tests(held_out, rest, features, categorical, residualize):
            out.setdefault((t.feature, t.comparator), []).append(t)
    return out


def ks_p_value(d: float, n_eff: float, between: float = 0.0, dof: int = 0) -> float:
    """P(K^2 + between * F(1, dof) >= location_scale(d)^2 n_eff).

    Sampling noise (``K``: the Kolmogorov distribution of i.i.d. rows) plus a between-day
    component: ``between`` is the mean extra ``location_scale(D)^2 n_eff`` whole days add,
    estimated from ``dof`` reference days (hence F(1, dof): a day's own shift over the
    reference days' mean shift). ``between = 0`` is the exact asymptotic two-sample KS test.
    """
    if between <= 0 or dof < 1:
        return float(special.kolmogorov(d * math.sqrt(n_eff)))
    lam2 = location_scale(d) ** 2 * n_eff
    top = lam2 / between
    # Integrate f_F(t) * Ksf(sqrt(lam2 - between t)) over t in [0, top] with t = s^2, which
    # removes f_F's t^-1/2 singularity at 0; beyond ``top`` the integrand is f_F(t) * 1.
    s = np.linspace(0.0, math.sqrt(top), 257)
    t = s * s
    at_zero = 2.0 / (math.sqrt(dof) * special.beta(0.5, dof / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(s > 0, stats.f.pdf(t, 1, dof) * 2.0 * s, at_zero)
    ksf = special.kolmogorov(np.sqrt(np.maximum(lam2 - between * t, 0.0)))
    return float(min(1.0, stats.f.sf(top, 1, dof) + np.trapz(g * ksf, s)))


def _ks_critical(alpha: float, n_eff: float, between: float, dof: int) -> float:
    """The KS statistic at which :func:`ks_p_value` reaches ``alpha`` (1.0 if it never does)."""
    if between <= 0 or dof < 1:
        return min(1.0, float(special.kolmogi(alpha)) / math.sqrt(n_eff))
    if ks_p_value(_MAX_D, n_eff, between, dof) > alpha:
        return 1.0
    return float(
        optimize.brentq(
            lambda d: ks_p_value(d, n_eff, between, dof) - alpha, 0.0, _MAX_D, xtol=1e-5
        )
    )


def _prepared(frame: pd.DataFrame, features: Sequence[str], categorical: Sequence[str]):
    """Only the tested columns; a missing or non-numeric feature becomes NaN (the gate's other
    checks report those days; drift is then measured on what is left)."""
    out = {}
    for name in features:
        col = frame[name] if name in frame.columns else pd.Series(np.nan, index=frame.index)
        out[name] = pd.to_numeric(col, errors="coerce").astype(float)
    for name in categorical:
        out[name] = frame[name] if name in frame.columns else pd.Series(None, index=frame.index)
    return pd.DataFrame(out, index=frame.index)


def drift_scores(
    day: pd.DataFrame,
    reference_days: Sequence[pd.DataFrame],
    features: Sequence[str],
    *,
    categorical: Sequence[str] = (),
    min_effect: Mapping[str, float] | None = None,
    cfg: DriftConfig = DriftConfig(),
) -> list[dict]:
    """One entry per test: ``{"feature", "comparator", "value", "threshold", "p_value", ...}``.

    ``value`` is the statistic (KS D; L-infinity distance of category shares for chi2),
    ``threshold`` the KS critical value at the day's sample sizes, calibration and correction,
    or ``min_effect`` when larger (None for chi2), ``p_value`` Bonferroni-corrected over the
    day's tests. ``drifted``:
    ``p_value < alpha`` and ``value >= min_effect[feature]`` (and, before the null could be
    calibrated, ``value >= cfg.uncalibrated_min_effect``). ``restart``: a drifted marginal
    test whose statistic reaches ``cfg.restart_statistic``, on a calibrated day.
    ``largest_reference_value`` is the largest statistic of a reference day against the others
    (what ordinary days reach), for the reader.
    """
    if not reference_days:
        return []
    day = _prepared(day, features, categorical)
    reference_days = [_prepared(d, features, categorical) for d in reference_days]
    reference = pd.concat(reference_days, ignore_index=True)
    residualize = None
    if cfg.residual_test:
        fitted = _Residualizer(reference, features)
        residualize = fitted if fitted.usable else None
    tests = _tests(day, reference, features, categorical, residualize)
    spreads = _null_spreads(reference_days, features, categorical, residualize, cfg)
    calibrated = bool(spreads)
    per_test_alpha = cfg.alpha / max(1, len(tests))
    min_effect = min_effect or {}
    out = []
    for t in tests:
        null = spreads.get((t.feature, t.comparator), [])
        mean_raw = float(np.mean([n.raw for n in null])) if null else 0.0
        if t.comparator == CHI2:
            inflation = max(1.0, mean_raw)
            p = float(stats.chi2.sf(t.raw * t.dof / inflation, t.dof)) if t.dof else 1.0
            between, critical = 0.0, None
        else:
            between = max(0.0, mean_raw - _KOLMOGOROV_MEAN_SQUARE)
            ne = _n_eff(t.n, t.m)
            p = ks_p_value(t.statistic, ne, between, len(null))
            critical = _ks_critical(per_test_alpha, ne, between, len(null))
        floor = min_effect.get(t.feature, 0.0)
        if not calibrated:
            floor = max(floor, cfg.uncalibrated_min_effect)
        p_adj = min(1.0, p * len(tests))
        out.append(
            {
                "feature": t.feature,
                "comparator": t.comparator,
                "value": round(t.statistic, 6),
                "threshold": None if critical is None else round(max(critical, floor), 6),
                "p_value": float(f"{p_adj:.4g}"),
                "alpha": cfg.alpha,
                "min_effect": floor,
                "between_days": round(between, 3),
                "calibration_days": len(null),
                "largest_reference_value": round(max((n.statistic for n in null), default=0), 6),
                "rows": t.n,
                "reference_rows": t.m,
                "drifted": bool(p_adj < cfg.alpha and t.statistic >= floor),
                "restart": False,
            }
        )
    if calibrated and cfg.restart_statistic is not None:
        for e in out:
            e["restart"] = (
                e["comparator"] == KS and e["drifted"] and e["value"] >= cfg.restart_statistic
            )
    return out


def reference_days(restarts: Sequence[bool], max_days: int) -> list[int]:
    """Indices (into earlier validated days, oldest first) of the days to pool as reference.

    The last ``max_days`` days, but none before the newest day that started a regime: after a
    sudden shift the old normal is no reference for the new one.
    """
    if max_days < 1:
        raise ValueError(f"max_days must be >= 1, got {max_days}")
    first = max(0, len(restarts) - max_days)
    for i in range(len(restarts) - 1, first - 1, -1):
        if restarts[i]:
            first = i
            break
    return list(range(first, len(restarts)))


def restart_score(scores: Sequence[Mapping]) -> float | None:
    """The day's regime-change score: the largest marginal KS statistic that is significant, on
    a calibrated day (0.0 if none); None when nothing was compared.

    It reaches ``restart_statistic`` exactly when an entry says ``restart``; the training
    window's resolver compares it with the same setting.
    """
    if not scores:
        return None
    values = [
        float(s["value"])
        for s in scores
        if s.get("comparator") == KS and s.get("drifted") and s.get("calibration_days", 0) > 0
    ]
    return max(values, default=0.0)


def day_restarts(scores: Sequence[Mapping]) -> bool:
    """Whether a day's drift entries (a gate's ``drift.scores``) start a new regime."""
    return any(bool(s.get("restart")) for s in scores if isinstance(s, Mapping))
