"""``anomalyops init``: onboard a user's files (the logic is ``anomalyops.onboarding``)."""

from __future__ import annotations

import argparse
import shlex
import sys


def run(args: argparse.Namespace) -> int:
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
    write_landing(lake, plan.days, name=LANDING_FILE, ready_marker=settings.landing.ready_marker)
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
    print(f"  .venv/bin/anomalyops ingest-days {first} {last}")
    print(f"  .venv/bin/airflow dags test anomalyops_train {last}")
    print(
        "after editing the spec: `anomalyops compile-pipeline`; once days are validated, "
        "`anomalyops schema infer --from-lake` re-infers the schema from them"
    )
    return 0
