"""Time the validation gate (GX checkpoint + TFDV statistics/validation/drift) per day size.

    .venv/bin/python bench/bench_gate.py                 # 100k and 1M rows
    .venv/bin/python bench/bench_gate.py --rows 100000 --repeat 3

Each size gets a fresh temporary lake holding a validated baseline day (so drift is measured)
and the day under test in raw/, with as many simulated stations as needed to keep timestamps
unique per station. Prints one line per run: total gate time and its parts. Library imports
(GX, TensorFlow) are timed once, separately: a long-lived Airflow worker pays them once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow_hotfix  # noqa: F401  (CVE-2023-47248) before this process reads any Parquet

ROOT = Path(__file__).resolve().parents[1]
DAY = dt.date(2026, 11, 8)


def make_day(spec, day: dt.date, rows: int):
    import pandas as pd

    from anomalyops.sources.simulator import SimulatorConfig, simulate_day

    per_station = 86_400  # one row a second at most: unique timestamps per station
    stations = max(1, -(-rows // per_station))
    frames = []
    for i in range(stations):
        n = min(per_station, rows - i * per_station)
        df = simulate_day(spec, day, SimulatorConfig(rows_per_day=n, seed=42 + i))
        if spec.entity:
            df[spec.entity.column] = f"{spec.name}-{i + 1:02d}"
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-gate-"))
    shutil.copytree(ROOT / "gx", work / "gx", ignore=shutil.ignore_patterns("uncommitted"))
    os.environ["ANOMALYOPS_VALIDATION__GX_ROOT"] = str(work / "gx")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from anomalyops.lake import Lake, Zone
    from anomalyops.settings import Settings
    from anomalyops.spec import RowCount, load_spec
    from anomalyops.validation.quality_gate import run_gate
    from anomalyops.validation.report_model import GateReport

    t0 = time.perf_counter()
    import great_expectations  # noqa: F401
    import tensorflow_data_validation  # noqa: F401

    print(f"imports (GX + TFDV/TensorFlow), once per process: {time.perf_counter() - t0:.1f} s")
    print(f"cpus: {os.cpu_count()}  python: {sys.version.split()[0]}")

    spec_settings = Settings()
    spec = load_spec(spec_settings.feature_spec_path)
    for rows in args.rows:
        lake_root = work / f"lake-{rows}"
        os.environ["ANOMALYOPS_LAKE_ROOT"] = str(lake_root)
        settings = Settings()
        lake = Lake(settings.lake_root)
        # The demo spec caps a day at 200k rows; lift the cap so the big day can pass.
        day_spec = spec.model_copy(
            update={"rows_per_day": RowCount(min=1, max=max(rows * 2, spec.rows_per_day.max or 1))}
        )
        t0 = time.perf_counter()
        lake.write_table(
            Zone.VALIDATED,
            DAY - dt.timedelta(days=1),
            make_day(spec, DAY - dt.timedelta(days=1), rows),
        )
        lake.write_table(Zone.RAW, DAY, make_day(spec, DAY, rows))
        print(
            f"\n{rows:,} rows/day ({len(spec.all_columns)} columns): data prepared in {time.perf_counter() - t0:.1f} s"
        )
        for i in range(args.repeat):
            t0 = time.perf_counter()
            gate = GateReport.model_validate(run_gate(DAY, settings, day_spec))
            total = time.perf_counter() - t0
            t = gate.timings
            print(
                f"  run {i + 1}: gate {total:6.2f} s  = GX {t['gx_s']:6.2f} s + TFDV {t['tfdv_s']:6.2f} s"
                f" + read/report {total - t['gx_s'] - t['tfdv_s']:5.2f} s"
                f"  -> {rows / total:,.0f} rows/s; decision {gate.decision.value}"
                f" ({len(gate.expectations.failed)} failed expectations,"
                f" {gate.expectations.evaluated} evaluated)"
            )
            for reason in gate.reasons:
                print(f"    {reason}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
