"""``anomalyops`` command line: the operator's entry points that are not Airflow's own."""

from __future__ import annotations

import argparse
import shlex
import sys

from anomalyops_cli import init_cmd


def _cmd_airflow_env(args: argparse.Namespace) -> int:
    from anomalyops_airflow.env import airflow_env

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


def _cmd_mail_sink(args: argparse.Namespace) -> int:
    import logging

    from anomalyops_devtools.mail_sink import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter
    serve(args.maildir, args.host, args.port)
    return 0


def _cmd_schema_infer(args: argparse.Namespace) -> int:
    from pathlib import Path

    from anomalyops.settings import get_settings
    from anomalyops.spec import load_spec
    from anomalyops.validation import schema

    settings = get_settings()
    spec = load_spec(args.spec or settings.feature_spec_path)
    if args.from_lake:
        from anomalyops.lake import Lake
        from anomalyops.onboarding import OnboardingError, validated_days

        try:
            dates, frames = validated_days(Lake(settings.lake_root), args.days)
        except OnboardingError as exc:
            print(f"schema infer: {exc}", file=sys.stderr)
            return 1
        what = f"{len(dates)} validated day(s) of the lake ({dates[0]} .. {dates[-1]})"
    else:
        frames = schema.simulated_good_days(spec, args.days, args.rows, args.seed)
        what = f"{args.days} simulated good days"
    out = schema.write_schema(
        schema.infer_curated_schema(spec, frames),
        Path(args.output or settings.validation.schema_path),
        spec,
    )
    print(f"wrote {out} from {what}; review it (git diff) and commit")
    return 0


def _cmd_gate(args: argparse.Namespace) -> int:
    import json

    from anomalyops.settings import get_settings
    from anomalyops.validation.quality_gate import run_gate
    from anomalyops.validation.report_model import GateReport, Verdict

    gate = GateReport.model_validate(run_gate(args.date, get_settings()))
    summary = {
        "ds": gate.ds,
        "decision": gate.decision.value,
        "reasons": gate.reasons,
        "reports": gate.reports.to_json(),
    }
    print(json.dumps(summary, indent=2))
    return 1 if gate.decision == Verdict.FAIL else 0


def _cmd_readmit(args: argparse.Namespace) -> int:
    import json

    from anomalyops.settings import get_settings
    from anomalyops.validation.day_actions import GateError, readmit
    from anomalyops_airflow.events import announce_validated

    try:
        result = readmit(args.date, get_settings(), force=args.force, reason=args.reason)
    except GateError as exc:
        print(f"readmit {args.date}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    print(announce_validated(result["ds"], result["path"]))
    return 0


def _cmd_compile_pipeline(args: argparse.Namespace) -> int:
    from pathlib import Path

    from anomalyops.settings import get_settings
    from anomalyops_airflow import ir

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


def _cmd_demo(args: argparse.Namespace) -> int:
    from anomalyops_devtools import demo

    return demo.main(
        [args.action, "--days", str(args.days), *(["--detach"] if args.detach else [])]
    )


MAX_INGEST_DAYS = 3660


def _cmd_ingest_days(args: argparse.Namespace) -> int:
    import datetime as dt
    import os

    from anomalyops.settings import PROJECT_ROOT
    from anomalyops_airflow.env import airflow_env
    from anomalyops_devtools.ingest_days import run_in_child, tally

    first = _iso_day(args.first)
    last = _iso_day(args.last) if args.last else first
    if last < first:
        print(f"error: the last day {last} is before the first {first}", file=sys.stderr)
        return 2
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    if len(days) > MAX_INGEST_DAYS:
        print(f"error: {len(days)} days; at most {MAX_INGEST_DAYS} at a time", file=sys.stderr)
        return 2
    log_path = PROJECT_ROOT / "var" / "logs" / f"ingest-days-{first}-{last}.log"
    print(f"ingesting {len(days)} day(s), {first} .. {last}; Airflow's output in {log_path}")
    # The project's embedded Airflow (var/airflow, this checkout's dags/) unless the caller's
    # environment names another: without it the child could not find the DAG.
    results = run_in_child(days, {**os.environ, **airflow_env()}, log_path, say=print)
    print(tally(results))
    return 0 if all(r.state == "success" for r in results) else 1


def _iso_day(text: str):
    import datetime as dt

    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"error: {text!r} is not a date (YYYY-MM-DD)") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anomalyops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "airflow-env", help="print the embedded Airflow configuration as shell exports"
    )
    p.set_defaults(func=_cmd_airflow_env)

    p = sub.add_parser("demo", help="the whole loop on this machine (`make run`); `down` stops it")
    p.add_argument("action", choices=["up", "down"])
    p.add_argument("--days", type=int, default=20, help="days of history to backfill")
    p.add_argument("--detach", action="store_true", help="return once the first model is served")
    p.set_defaults(func=_cmd_demo)

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

    p = sub.add_parser("mail-sink", help="run a local SMTP server saving alert emails as .eml")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8025)
    p.add_argument("--maildir", default="var/mail", help="directory for received .eml files")
    p.set_defaults(func=_cmd_mail_sink)

    p = sub.add_parser("schema", help="the curated TFDV schema")
    schema_sub = p.add_subparsers(dest="schema_command", required=True)
    p = schema_sub.add_parser(
        "infer", help="(re)generate it from simulated good days (or the lake's) + the spec"
    )
    p.add_argument(
        "--from-lake",
        action="store_true",
        help="infer from the lake's newest validated days instead of simulated ones",
    )
    p.add_argument(
        "--days", type=int, default=7, help="days to infer from (newest with --from-lake)"
    )
    p.add_argument("--rows", type=int, default=1440, help="rows per simulated day")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--spec", help="feature spec path")
    p.add_argument("--output", help="default: ANOMALYOPS_VALIDATION__SCHEMA_PATH")
    p.set_defaults(func=_cmd_schema_infer)

    p = sub.add_parser(
        "gate", help="run the validation gate on raw/ds=DATE (records, moves nothing)"
    )
    p.add_argument("date", help="YYYY-MM-DD")
    p.set_defaults(func=_cmd_gate)

    p = sub.add_parser(
        "readmit",
        help="re-run the gate on a quarantined day and promote it",
        description="Re-run the gate on a quarantined day and promote it, then ask Airflow's "
        "REST API to record the validated-data Dataset event (ANOMALYOPS_AIRFLOW_API_URL, "
        "_USER, _PASSWORD; the URL defaults to AIRFLOW__WEBSERVER__BASE_URL).",
    )
    p.add_argument("date", help="YYYY-MM-DD")
    p.add_argument("--force", action="store_true", help="promote even if the gate still fails")
    p.add_argument("--reason", help="why (required with --force; recorded in gate.json)")
    p.set_defaults(func=_cmd_readmit)
    p = sub.add_parser(
        "init",
        help="onboard your own data: infer a spec and schema from files, fill landing/<date>/",
    )
    p.add_argument(
        "--from",
        dest="files",
        nargs="+",
        required=True,
        metavar="FILE",
        help="CSV, CSV.gz or Parquet files holding the history (same columns)",
    )
    p.add_argument("--name", help="spec name (default: the first file's name)")
    p.add_argument("--spec-out", help="where to write the spec (default: config/<name>.yaml)")
    p.add_argument("--schema-out", help="default: config/schema/<name>.pbtxt")
    p.add_argument("--timestamp", help="the timestamp column (default: inferred)")
    p.add_argument("--entity", help="the entity (series id) column (default: inferred)")
    p.add_argument("--label", help="a 0/1 label column, evaluation only (default: inferred)")
    p.add_argument(
        "--rows-per-day",
        type=int,
        metavar="N",
        help="no timestamp: N rows a day, synthetic dates from --start-date",
    )
    p.add_argument(
        "--start-date", help="first day with --rows-per-day (default: ANOMALYOPS_START_DATE)"
    )
    p.add_argument(
        "--force", action="store_true", help="overwrite the spec, schema and landing days"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="say what would be written, write nothing"
    )
    p.add_argument("--no-compile", action="store_true", help="do not compile the TFX pipeline")
    p.set_defaults(func=init_cmd.run)  # fmt: skip

    p = sub.add_parser(
        "ingest-days",
        help="run the ingest DAG for each day FIRST..LAST in order, in one process (DAG.test)",
    )
    p.add_argument("first", help="YYYY-MM-DD")
    p.add_argument("last", nargs="?", help="YYYY-MM-DD (default: FIRST)")
    p.set_defaults(func=_cmd_ingest_days)

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
