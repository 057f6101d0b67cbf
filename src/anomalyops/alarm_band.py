"""Is an observed alarm rate still what the model was calibrated for?

A model's threshold is set so that about ``1 - threshold_quantile`` of normal rows cross it.
Scored data legitimately holds real anomalies, so the band is a ratio: the rate is
``above_band`` when the lower end of a 99 % Wilson interval of the observed rate exceeds
``max_ratio`` times the calibrated rate. The scoring API judges what it served since it
started; the daily served-traffic check judges one day's share of it. Both use this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

CONFIDENCE = 0.99
Z_99 = 2.5758293035489004
"""Two-sided 99 % normal quantile, for the Wilson interval."""


class TrafficStatus(str, Enum):
    NO_TRAFFIC = "no_traffic"
    """No row scored."""
    NOT_CALIBRATED = "not_calibrated"
    """The model's metadata has no ``threshold_quantile`` (pushed before it was recorded)."""
    TOO_FEW_ROWS = "too_few_rows"
    """Fewer scored rows than ``min_rows``: too early to judge."""
    WITHIN_BAND = "within_band"
    ABOVE_BAND = "above_band"
    """Even the interval's lower end is above ``max_ratio`` x the calibrated rate."""


def calibrated_rate(threshold_quantile: float | None) -> float | None:
    """``1 - threshold_quantile``, the share of normal rows the threshold was set to flag."""
    if threshold_quantile is None or not math.isfinite(threshold_quantile):
        return None
    # Rounded so 0.99 gives 0.01, not 0.010000000000000009 (JSON and metrics read better).
    return min(max(round(1.0 - threshold_quantile, 12), 0.0), 1.0)


def wilson_interval(successes: int, trials: int, z: float = Z_99) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (well behaved at 0 and n)."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    denominator = 1.0 + z2 / trials
    centre = p + z2 / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    lo = max((centre - spread) / denominator, 0.0)
    hi = min((centre + spread) / denominator, 1.0)
    if successes == 0:
        lo = 0.0
    if successes == trials:
        hi = 1.0
    return lo, hi


@dataclass(frozen=True)
class Assessment:
    alarm_rate: float | None
    interval: tuple[float, float] | None
    max_alarm_rate: float | None
    status: TrafficStatus
    summary: str


def assess_counts(
    version: int,
    rows: int,
    flagged: int,
    calibrated: float | None,
    *,
    max_ratio: float,
    min_rows: int,
    unscored: int = 0,
    scope: str = "since the service started",
) -> Assessment:
    """``flagged`` of ``rows`` against ``max_ratio`` x the ``calibrated`` alarm rate."""
    max_rate = None if calibrated is None else min(1.0, max_ratio * calibrated)
    if rows == 0:
        extra = f" ({unscored:,} rows returned unscored)" if unscored else ""
        return Assessment(
            None,
            None,
            max_rate,
            TrafficStatus.NO_TRAFFIC,
            f"version {version}: no rows scored {scope}{extra}",
        )
    rate = flagged / rows
    interval = wilson_interval(flagged, rows)
    observed = (
        f"version {version}: {pct(rate)} of {rows:,} rows flagged "
        f"(99% interval {pct(interval[0])}-{pct(interval[1])})"
    )
    if calibrated is None or max_rate is None:
        status = TrafficStatus.NOT_CALIBRATED
        verdict = "the model records no calibrated rate (no threshold_quantile) to compare with"
    else:
        band = f"calibrated for {pct(calibrated)}, band up to {pct(max_rate)}"
        if rows < min_rows:
            status = TrafficStatus.TOO_FEW_ROWS
            verdict = f"{band}; too few rows to judge (need {min_rows:,})"
        elif interval[0] > max_rate:
            status = TrafficStatus.ABOVE_BAND
            verdict = f"{band}: ABOVE the band, the data has likely drifted"
        else:
            status = TrafficStatus.WITHIN_BAND
            verdict = f"{band}: within the band"
    return Assessment(rate, interval, max_rate, status, f"{observed}; {verdict}")


def pct(value: float) -> str:
    return f"{100 * value:.2f}%"
