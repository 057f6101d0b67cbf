"""``anomalyops`` command line: the operator's entry points that are not Airflow's own."""

from __future__ import annotations

import argparse
import shlex
import sys


def _cmd_airflow_env(args: argparse.Namespace) -> int:
    from anomalyops.airflow_env import airflow_env

    for key, value in airflow_env().items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    import datetime as dt

    from anomalyops.settings import get_settings
    from anomalyops.sources.simulator import SimulatorConfig, simulate_day
    from anomalyops.spec import load_spec

    settings = get_settings()
    spec = load_spec(args.spec or settings.feature_spec_path)
    cfg = SimulatorConfig(
        seed=args.seed,
        rows_per_day=args.rows,
        scenario=args.scenario,
        drift_start=dt.date.fromisoformat(args.drift_start) if args.drift_start else None,
    )
    df = simulate_day(spec, dt.date.fromisoformat(args.date), cfg)
    if args.output.endswith(".parquet"):
        df.to_parquet(args.output, index=False)
    else:
        df.to_csv(args.output, index=False)
    print(f"wrote {len(df)} rows to {args.output}")
    return 0


def _cmd_check_spec(args: argparse.Namespace) -> int:
    from anomalyops.settings import get_settings
    from anomalyops.spec import FeatureSpecError, load_spec

    try:
        spec = load_spec(args.spec or get_settings().feature_spec_path)
    except FeatureSpecError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{spec.name}: {len(spec.features)} features, fingerprint {spec.fingerprint()}")
    return 0


def _cmd_compile_pipeline(args: argparse.Namespace) -> int:
    from pathlib import Path

    from anomalyops.orchestration import ir
    from anomalyops.settings import get_settings

    settings = get_settings()
    if args.check:
        status = ir.project_status(settings)
        print(status.message, file=sys.stdout if status.fresh else sys.stderr)
        return 0 if status.fresh else 1
    compiled = ir.compile_project_pipeline(
        settings, schema_path=Path(args.schema) if args.schema else None
    )
    print(f"compiled {compiled.name}: {compiled.pb_path}, {compiled.json_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anomalyops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "airflow-env", help="print the embedded Airflow configuration as shell exports"
    )
    p.set_defaults(func=_cmd_airflow_env)

    p = sub.add_parser("check-spec", help="validate a feature spec file")
    p.add_argument("spec", nargs="?", help="path (default: ANOMALYOPS_FEATURE_SPEC_PATH)")
    p.set_defaults(func=_cmd_check_spec)

    p = sub.add_parser("simulate", help="write one simulated day to a CSV or Parquet file")
    p.add_argument("date", help="YYYY-MM-DD")
    p.add_argument("output", help="file.csv or file.parquet")
    p.add_argument("--rows", type=int, default=1440)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--scenario", choices=["none", "gradual", "sudden"], default="none")
    p.add_argument("--drift-start", help="YYYY-MM-DD (gradual/sudden)")
    p.add_argument("--spec", help="feature spec path")
    p.set_defaults(func=_cmd_simulate)
    p = sub.add_parser(
        "compile-pipeline",
        help="compile the TFX pipeline to the IR the training DAG runs (--check: fail if stale)",
    )
    p.add_argument("--check", action="store_true", help="exit 1 if missing or stale, else 0")
    p.add_argument("--schema", help="schema file passed to create_pipeline(schema_path=...)")
    p.set_defaults(func=_cmd_compile_pipeline)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
