"""Does the gate's drift score tell drift from sampling noise? Prints warn/restart rates.

    .venv/bin/python bench/bench_drift_calibration.py
    .venv/bin/python bench/bench_drift_calibration.py --sizes 500 --sim-days 20 --seeds 42 7

Runs only the gate's drift logic (``anomalyops.validation.drift``) on pandas frames, day by
day, with the gate's reference rule (the last ``DRIFT_REFERENCE_DAYS`` earlier days, cut at
the newest regime start) and its default settings. Two kinds of data:

- **i.i.d. days**: each bundled ADBench table (all rows, shuffled with a seed) split into days
  of 200, 500 and 1440 rows. Nothing drifts, so every warning is a false alarm. Tables are
  reshuffled (new seeds) until at least ``--min-days`` days are scored; a table with fewer
  than 8 days' rows gets its days drawn with replacement (12 a run). Goal: at most 1 day in
  20 warns, none restarts.
- **the simulator** (demo spec, 1440 rows a day, drift from ``--drift-day``): ``none`` should
  warn on at most 1 day in 20 and never restart; ``sudden`` should warn and restart on its
  first drift day; ``gradual`` should warn within 3 days of the drift's start.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np
import pandas as pd

from anomalyops.settings import Settings
from anomalyops.sources.simulator import SimulatorConfig, simulate_day
from anomalyops.spec import load_spec
from anomalyops.validation.drift import config_from, day_restarts, drift_scores, reference_days

ROOT = Path(__file__).resolve().parents[1]
ADBENCH = ROOT / "bench" / "data" / "adbench"
START = dt.date(2026, 10, 1)


def replay(days: list[pd.DataFrame], features: list[str], settings: Settings) -> list:
    """Score every day after the first against its reference; ``[(warned, restarted), ...]``."""
    cfg = config_from(settings)
    restarts: list[bool] = [False]
    out = []
    for i in range(1, len(days)):
        ref = [days[j] for j in reference_days(restarts, settings.validation.drift_reference_days)]
        scores = drift_scores(days[i], ref, features, cfg=cfg)
        warned = any(s["drifted"] for s in scores)
        restarted = day_restarts(scores)
        restarts.append(restarted)
        out.append((warned, restarted))
    return out


def iid_rows(sizes: list[int], min_days: int, settings: Settings) -> list[dict]:
    rows = []
    for path in sorted(ADBENCH.glob("*.npz")):
        data = np.load(path)
        table = pd.DataFrame(data["X"], columns=[f"x{j}" for j in range(data["X"].shape[1])])
        features = list(table.columns)
        for size in sizes:
            per_shuffle = len(table) // size
            # Too few rows for 8 days: draw the days with replacement (still i.i.d. rows).
            bootstrap = per_shuffle < 8
            results, seed, t0 = [], 0, time.perf_counter()
            while len(results) < min_days:
                if bootstrap:
                    picks = table.sample(n=12 * size, replace=True, random_state=seed)
                    shuffled, n_days = picks.reset_index(drop=True), 12
                else:
                    shuffled = table.sample(frac=1.0, random_state=seed).reset_index(drop=True)
                    n_days = per_shuffle
                days = [shuffled.iloc[k * size : (k + 1) * size] for k in range(n_days)]
                results += replay(days, features, settings)
                seed += 1
            rows.append(
                {
                    "data": path.stem,
                    "rows/day": size,
                    "days from": "bootstrap" if bootstrap else "shuffle",
                    "runs": seed,
                    "days": len(results),
                    "warned": sum(w for w, _ in results),
                    "restarted": sum(r for _, r in results),
                    "s/day": (time.perf_counter() - t0) / len(results),
                }
            )
    return rows


def _never(k: int | None) -> int | str:
    return "never" if k is None else k


def simulator_rows(days: int, drift_day: int, seeds: list[int], settings) -> list[dict]:
    spec = load_spec(ROOT / "config" / "feature_spec.yaml")
    drift_start = START + dt.timedelta(days=drift_day)
    rows = []
    for seed in seeds:
        for scenario in ("none", "gradual", "sudden"):
            cfg = SimulatorConfig(seed=seed, scenario=scenario, drift_start=drift_start)
            frames = [simulate_day(spec, START + dt.timedelta(days=i), cfg) for i in range(days)]
            t0 = time.perf_counter()
            res = replay(frames, spec.feature_names, settings)
            # res[k] is day k + 1; split into the days before the drift and from it on.
            pre, post = res[: drift_day - 1], res[drift_day - 1 :]
            first_warn = next((k for k, (w, _) in enumerate(post) if w), None)
            first_restart = next((k for k, (_, r) in enumerate(post) if r), None)
            rows.append(
                {
                    "seed": seed,
                    "scenario": scenario,
                    "days": len(res),
                    "warned": sum(w for w, _ in res),
                    "restarted": sum(r for _, r in res),
                    "warned before drift": f"{sum(w for w, _ in pre)}/{len(pre)}",
                    "first warn (drift day)": "-" if scenario == "none" else _never(first_warn),
                    "first restart (drift day)": "-"
                    if scenario == "none"
                    else _never(first_restart),
                    "restarts after drift": "-" if scenario == "none" else sum(r for _, r in post),
                    "drift days warned": "-"
                    if scenario == "none"
                    else ",".join(str(k) for k, (w, _) in enumerate(post) if w) or "none",
                    "s/day": (time.perf_counter() - t0) / len(res),
                }
            )
    return rows


def show(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    frame = pd.DataFrame(rows).fillna("")
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 500, 1440])
    parser.add_argument("--min-days", type=int, default=20, help="i.i.d. days scored per case")
    parser.add_argument("--sim-days", type=int, default=30)
    parser.add_argument("--drift-day", type=int, default=14, help="first drifted day (0-based)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--skip-iid", action="store_true")
    args = parser.parse_args()
    settings = Settings()
    v = settings.validation
    print(
        f"drift settings: alpha={v.drift_alpha} reference_days={v.drift_reference_days} "
        f"min_calibration_days={v.drift_min_calibration_days} restart_statistic="
        f"{settings.training.window_restart_drift_score} uncalibrated_min_effect="
        f"{v.drift_uncalibrated_min_effect} residual_test={v.drift_residual_test}"
    )
    if not args.skip_iid:
        rows = iid_rows(args.sizes, args.min_days, settings)
        show(rows, "i.i.d. days (shuffled ADBench tables): every warning is a false alarm")
        scored = rows
        days = sum(r["days"] for r in scored)
        warned = sum(r["warned"] for r in scored)
        restarted = sum(r["restarted"] for r in scored)
        worst = max(r["warned"] / r["days"] for r in scored)
        print(
            f"total: {warned}/{days} days warned ({warned / days:.1%}; worst case "
            f"{worst:.1%}; goal <= 5 %), {restarted} restarted (goal 0)"
        )
    show(
        simulator_rows(args.sim_days, args.drift_day, args.seeds, settings),
        f"simulator, 1440 rows/day, {args.sim_days} days, drift from day {args.drift_day}",
    )


if __name__ == "__main__":
    main()
