"""``anomalyops`` command line: the operator's entry points that are not Airflow's own."""

from __future__ import annotations

import argparse
import shlex
import sys


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


def _cmd_init(args: argparse.Namespace) -> int:
    """Onboard files: spec + schema from the user's rows, landing days, the compiled IR."""
    import datetime as dt
    from pathlib import Path

    from anomalyops.history import write_landing
    from anomalyops.lake import Lake
    from anomalyops.onboarding import (
        LANDING_FILE,
        OnboardingError,
        existing_landing,
        plan_onboarding,
        read_sources,
        spec_yaml,
    )
    from anomalyops.settings import get_settings
    from anomalyops.sources.landing import Limits

    settings = get_settings()
    name = args.name or Path(args.files[0]).name.split(".")[0]
    try:
        start = dt.date.fromisoformat(args.start_date) if args.start_date else settings.start_date
    except ValueError:
        print(f"init: --start-date {args.start_date!r} is not YYYY-MM-DD", file=sys.stderr)
        return 2
    try:
        sources = read_sources(args.files, Limits.from_settings(settings.ingest))
        plan = plan_onboarding(
            sources,
            name=name,
            timestamp=args.timestamp,
            entity=args.entity,
            label=args.label,
            rows_per_day=args.rows_per_day,
            start=start,
        )
    except (OnboardingError, ValueError) as exc:
        for problem in getattr(exc, "problems", [str(exc)]):
            print(f"init: {problem}", file=sys.stderr)
        return 1
    spec = plan.spec
    spec_out = Path(args.spec_out or Path("config") / f"{spec.name}.yaml").absolute()
    schema_out = Path(
        args.schema_out or Path("config") / "schema" / f"{spec.name}.pbtxt"
    ).absolute()
    lake = Lake(settings.lake_root)
    clashes = [str(p) for p in (spec_out, schema_out) if p.exists()]
    clashes += existing_landing(lake, plan.days)
    if clashes and not args.force:
        print("init: refusing to overwrite (pass --force to replace):", file=sys.stderr)
        for clash in clashes[:10]:
            print(f"  {clash}", file=sys.stderr)
        if len(clashes) > 10:
            print(f"  ... and {len(clashes) - 10} more", file=sys.stderr)
        return 1

    features = ", ".join(f"{f.name} [{f.min}, {f.max}]" for f in spec.features)
    prefix = "would " if args.dry_run else ""
    print(f"{len(plan.table):,} rows from {len(plan.sources)} file(s); spec {spec.name!r}:")
    print(f"  timestamp {spec.timestamp.column!r}", end="")
    print(f", entity {spec.entity.column!r}" if spec.entity else ", no entity", end="")
    print(f", label {spec.label.column!r}" if spec.label else ", no label")
    print(f"  {len(spec.features)} feature(s): {features}")
    for old, new in plan.renamed.items():
        print(f"  column {old!r} -> {new!r} (spec names must be identifiers)")
    for col, why in plan.ignored.items():
        print(f"  left out {col!r}: {why}")
    for note in plan.notes:
        print(f"  note: {note}")
    folders = f"{lake.uri(lake.landing_path(plan.first_day))} .. {plan.last_day}"
    print(f"{prefix}write the spec to {spec_out}")
    print(f"{prefix}write the curated TFDV schema (from these rows) to {schema_out}")
    print(f"{prefix}write {len(plan.days)} day(s) to {folders} ({LANDING_FILE} each)")
    if args.dry_run:
        print("would compile the TFX pipeline (anomalyops compile-pipeline)")
        print("dry run: nothing written")
        return 0

    from anomalyops.validation import schema

    spec_out.parent.mkdir(parents=True, exist_ok=True)
    tmp = spec_out.with_name(f".{spec_out.name}.tmp")
    tmp.write_text(spec_yaml(spec, plan), encoding="utf-8")
    tmp.replace(spec_out)
    schema.write_schema(schema.infer_curated_schema(spec, plan.days.values()), schema_out, spec)
    write_landing(lake, plan.days, name=LANDING_FILE)
    print(f"wrote {spec_out}, {schema_out} and {len(plan.days)} landing day(s)")

    first, last = plan.first_day.isoformat(), plan.last_day.isoformat()
    exports = {
        "ANOMALYOPS_FEATURE_SPEC_PATH": str(spec_out),
        "ANOMALYOPS_VALIDATION__SCHEMA_PATH": str(schema_out),
        "ANOMALYOPS_SOURCE": "landing",
        "ANOMALYOPS_START_DATE": first,
        "ANOMALYOPS_LAKE_ROOT": settings.lake_root,
        "ANOMALYOPS_PIPELINE_ROOT": str(settings.pipeline_root),
        "ANOMALYOPS_TRAINING__WINDOW_DAYS": str(min(len(plan.days), 14)),
    }
    # Compile with exactly the settings the printed exports give: the IR's fingerprint covers them.
    import os

    from anomalyops.settings import Settings

    saved = {key: os.environ.get(key) for key in exports}
    os.environ.update(exports)
    try:
        ours = Settings()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    compiled = False
    if args.no_compile:
        print("skipped compiling the pipeline (--no-compile)")
    else:
        try:
            from anomalyops_airflow import ir

            result = ir.compile_project_pipeline(ours)
            compiled = True
            print(f"compiled {result.name}: {result.pb_path}")
        except Exception as exc:  # the data is in place; compiling can follow later
            print(f"could not compile the pipeline ({type(exc).__name__}: {exc})", file=sys.stderr)

    print("\nnext: review the spec (ranges, roles), then, in this shell:")
    for key, value in exports.items():
        print(f"  export {key}={shlex.quote(value)}")
    if not compiled:
        print("  .venv/bin/anomalyops compile-pipeline")
    print('  eval "$(.venv/bin/anomalyops airflow-env)" && .venv/bin/airflow db migrate')
    print(
        "  AIRFLOW__CORE__EXECUTOR=DebugExecutor .venv/bin/airflow dags backfill "
        f"anomalyops_ingest -s {first} -e {last} --continue-on-failures -y"
    )
    print(f"  .venv/bin/airflow dags test anomalyops_train {last}")
    print(
        "after editing the spec: `anomalyops compile-pipeline`; once days are validated, "
        "`anomalyops schema infer --from-lake` re-infers the schema from them"
    )
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
    p.set_defaults(func=_cmd_init)  # fmt: skip

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
