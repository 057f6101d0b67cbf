"""The data-quality gate: validate a raw partition and decide pass / warn / fail.

``judge_day`` is the whole policy as a plain function. ``run_gate`` runs GX and TFDV on
``raw/ds=<day>`` and records everything in ``reports/ds=<day>/gate.json``; it moves no data
(``day_actions`` promotes or quarantines on that record). Re-running a day rewrites the same
records.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from anomalyops.lake import Lake, PartitionNotFound, Zone, as_date
from anomalyops.settings import Settings
from anomalyops.spec import FeatureSpec, load_spec
from anomalyops.validation import report as rpt
from anomalyops.validation.report_model import (
    DriftBlock,
    Expectations,
    GateReport,
    Outcome,
    ReportLinks,
    SpecRef,
    Tfdv,
    Verdict,
)

log = logging.getLogger(__name__)

PASS, WARN, FAIL = Verdict.PASS, Verdict.WARN, Verdict.FAIL


class GateError(RuntimeError):
    """The gate cannot do what was asked (no report, promoting a failed day ...)."""


@dataclass(frozen=True)
class QualityDecision:
    verdict: Verdict
    """``pass`` (clean), ``warn`` (valid but drifted; promoted with an email), ``fail``."""
    reasons: list[str]


def drift_policy(settings: Settings, feature: str) -> str:
    v = settings.validation
    return v.drift_policy_by_feature.get(feature, v.drift_policy)


def judge_day(
    failed_expectations: list[dict],
    tfdv_anomalies: list[dict],
    drift: list[dict],
    policy: dict[str, str] | str = "warn",
) -> QualityDecision:
    """The gate's policy. Invalid data fails; drift warns or fails per feature's policy.

    ``drift`` entries are ``{"feature", "comparator", "value", "threshold", "drifted"}`` (plus
    ``p_value``, ``alpha`` from the calibrated tests); ``policy`` is one policy for all or
    ``{feature: "warn"|"block"}`` (missing features: ``warn``).
    """
    reasons = []
    for f in failed_expectations:
        where = f" on {f['column']}" if f.get("column") else ""
        reasons.append(f"expectation {f['expectation']}{where}: {f.get('observed', 'failed')}")
    for a in tfdv_anomalies:
        reasons.append(f"TFDV anomaly on {a['feature']}: {a['short_description']}")
    blocking, warning = [], []
    for d in drift:
        if not d.get("drifted"):
            continue
        p = policy if isinstance(policy, str) else policy.get(d["feature"], "warn")
        text = f"drift on {d['feature']}: {_drift_text(d)} ({p})"
        (blocking if p == "block" else warning).append(text)
    if reasons or blocking:
        return QualityDecision(FAIL, reasons + blocking + warning)
    if warning:
        return QualityDecision(WARN, warning)
    return QualityDecision(PASS, [])


def _drift_text(d: dict) -> str:
    comparator = d.get("comparator", "distance")
    if d.get("p_value") is None:  # a report from before the calibrated tests
        return f"{comparator} {d['value']:.3f} > {d['threshold']:.3f}"
    critical = "" if d.get("threshold") is None else f" (critical {d['threshold']:.3f})"
    return f"{comparator} {d['value']:.3f}{critical}, p={d['p_value']:.2g} < {d['alpha']:g}"


# -- running the checks ----------------------------------------------------------------------
def data_docs_dir(settings: Settings, lake: Lake) -> Path:
    v = settings.validation
    if v.data_docs_dir is not None:
        return Path(v.data_docs_dir)
    if lake.fs.protocol in ("file", ("file", "local")):
        return Path(lake.zone_path(Zone.REPORTS)) / "data_docs"
    return Path(v.gx_root) / "uncommitted" / "data_docs" / "local_site"


def baseline_day(lake: Lake, day: dt.date) -> dt.date | None:
    """The newest validated partition before ``day`` (TFDV's statistics page compares with it)."""
    earlier = [d for d in lake.partitions(Zone.VALIDATED) if d < day]
    return earlier[-1] if earlier else None


def _restarted(lake: Lake, day: dt.date) -> bool:
    """Whether the gate's drift record of ``day`` started a new regime (no record: no)."""
    from anomalyops.validation import drift as dft

    try:
        record = DriftBlock.model_validate_json(lake.read_file(Zone.REPORTS, day, rpt.DRIFT_JSON))
    except (FileNotFoundError, ValueError):  # pydantic's ValidationError is a ValueError
        return False
    return record.restart or dft.day_restarts(record.scores)


def reference_days(lake: Lake, day: dt.date, max_days: int) -> list[dt.date]:
    """The validated days ``day`` is compared with: the last ``max_days`` before it, cut at
    the newest one that started a regime (the old normal is no reference for the new one)."""
    from anomalyops.validation import drift as dft

    earlier = [d for d in lake.partitions(Zone.VALIDATED) if d < day][-max_days:]
    return [
        earlier[i] for i in dft.reference_days([_restarted(lake, d) for d in earlier], max_days)
    ]


def _reference_table(lake: Lake, day: dt.date, max_rows: int):
    df = lake.read_table(Zone.VALIDATED, day)
    # A seeded sample: the same reference every re-run, bounded memory on big days.
    return df.sample(n=max_rows, random_state=0) if len(df) > max_rows else df


def _baseline_stats(lake: Lake, day: dt.date, spec: FeatureSpec):
    from anomalyops.validation import schema as sch
    from anomalyops.validation import tfdv_checks

    stats_file = rpt.report_path(lake, day, rpt.STATS_PB)
    if lake.exists(Zone.REPORTS, day) and lake.fs.exists(stats_file):
        with lake.fs.open(stats_file, "rb") as f:
            return tfdv_checks.parse_statistics(f.read())
    # A day promoted without a report (e.g. forced before reports existed): recompute.
    return sch.statistics(lake.read_table(Zone.VALIDATED, day), spec)


def drift_scores(
    df,
    refs: list[dt.date],
    settings: Settings,
    spec: FeatureSpec,
    lake: Lake,
    divergences: list[dict],
    base: dt.date | None,
) -> list[dict]:
    """The calibrated drift tests of ``df`` against the pooled ``refs``; TFDV's divergence
    from ``base`` rides along on the marginal entries as information."""
    from anomalyops.validation import drift as dft

    if not refs:
        return []
    v = settings.validation
    entity = spec.entity.column if spec.entity and spec.entity.column in df.columns else None
    scores = dft.drift_scores(
        df,
        [_reference_table(lake, d, v.drift_reference_max_rows) for d in refs],
        spec.feature_names,
        categorical=[entity] if entity else [],
        min_effect={name: spec.drift_threshold(name) for name in spec.feature_names},
        cfg=dft.config_from(settings),
    )
    by_feature = {d["feature"]: d for d in divergences}
    for e in scores:
        info = by_feature.get(e["feature"])
        if info is not None and e["comparator"] != dft.KS_RESIDUAL:
            e["divergence"] = {**info, "baseline": base.isoformat() if base else None}
    return scores


def run_gate(ds: str | dt.date, settings: Settings, spec: FeatureSpec | None = None) -> dict:
    """Check ``raw/ds=<day>`` with GX and TFDV; write the report; return gate.json's content."""
    from anomalyops.validation import drift as dft
    from anomalyops.validation import gx as gxv
    from anomalyops.validation import schema as sch
    from anomalyops.validation import tfdv_checks

    day, lake = as_date(ds), Lake(settings.lake_root)
    spec = spec or load_spec(settings.feature_spec_path)
    v = settings.validation
    if not lake.exists(Zone.RAW, day):
        raise PartitionNotFound(
            f"no raw partition for {day} at {lake.uri(lake.partition_path(Zone.RAW, day))}: "
            "run 'ingest' first"
        )
    df = lake.read_table(Zone.RAW, day)
    schema = sch.load_schema(v.schema_path)
    problems = sch.check_schema_matches_spec(schema, spec)
    if problems:
        raise GateError(
            f"the curated schema {v.schema_path} does not fit spec {spec.name!r}: "
            + "; ".join(problems)
            + " (regenerate it with `anomalyops schema infer`)"
        )
    timings = {}
    t0 = time.perf_counter()
    docs_dir = data_docs_dir(settings, lake)
    docs_dir.mkdir(parents=True, exist_ok=True)
    gx_res = gxv.run_checkpoint(
        df, day, spec, gx_root=v.gx_root, data_docs_dir=docs_dir, examples=v.unexpected_examples
    )
    timings["gx_s"] = round(time.perf_counter() - t0, 3)

    t0 = time.perf_counter()
    files: dict[str, bytes] = {rpt.GX_RESULT: rpt.dumps(gx_res.result_json)}
    base = baseline_day(lake, day)
    if len(df) == 0:
        tfdv_res = tfdv_checks.TfdvResult(
            anomalies=[
                {
                    "feature": "(dataset)",
                    "short_description": "no rows",
                    "description": "The partition has no rows; TFDV computed no statistics.",
                    "reasons": ["DATASET_LOW_NUM_EXAMPLES"],
                }
            ]
        )
        stats = prev = None
    else:
        stats = sch.statistics(df, spec)
        prev = _baseline_stats(lake, base, spec) if base else None
        tfdv_res = tfdv_checks.validate(stats, schema, spec, prev)
        files[rpt.STATS_PB] = tfdv_checks.serialize(stats)
        files[rpt.STATS_HTML] = tfdv_checks.statistics_html(
            stats, prev, ds=day.isoformat(), baseline=base.isoformat() if base else None
        ).encode()
        files[rpt.ANOMALIES_JSON] = tfdv_checks.to_json(tfdv_res.proto)
        files[rpt.ANOMALIES_PBTXT] = tfdv_checks.to_pbtxt(tfdv_res.proto)
    timings["tfdv_s"] = round(time.perf_counter() - t0, 3)

    t0 = time.perf_counter()
    refs = reference_days(lake, day, v.drift_reference_days) if base and len(df) else []
    scores = drift_scores(df, refs, settings, spec, lake, tfdv_res.drift, base)
    timings["drift_s"] = round(time.perf_counter() - t0, 3)
    policies = {d["feature"]: drift_policy(settings, d["feature"]) for d in scores}
    drift = [{**d, "policy": policies[d["feature"]]} for d in scores]
    decision = judge_day(gx_res.failures, tfdv_res.anomalies, drift, policies)
    drift_block = DriftBlock(
        baseline=base.isoformat() if base else None,
        note=None
        if base
        else "no validated day before this one: nothing to compare with (first day)",
        method=dft.METHOD,
        reference_days=[d.isoformat() for d in refs],
        alpha=v.drift_alpha,
        restart=dft.day_restarts(drift),
        restart_score=dft.restart_score(drift),
        scores=drift,
    )
    files[rpt.DRIFT_JSON] = rpt.dumps({"ds": day.isoformat(), **drift_block.to_json()})
    uri = lambda name: lake.uri(rpt.report_path(lake, day, name))  # noqa: E731
    tfdv_links = (
        {
            "statistics_html": uri(rpt.STATS_HTML),
            "statistics": uri(rpt.STATS_PB),
            "anomalies": uri(rpt.ANOMALIES_JSON),
        }
        if stats is not None
        else {}
    )
    gate = GateReport(
        ds=day.isoformat(),
        decision=decision.verdict,
        outcome=Outcome.PENDING,
        reasons=decision.reasons,
        checked_at=rpt.now(),
        rows=len(df),
        spec=SpecRef(name=spec.name, fingerprint=spec.fingerprint()),
        expectations=Expectations(
            evaluated=gx_res.evaluated, success=gx_res.success, failed=gx_res.failures
        ),
        tfdv=Tfdv(schema_path=str(v.schema_path), anomalies=tfdv_res.anomalies),
        drift=drift_block,
        reports=ReportLinks(
            gate=uri(rpt.GATE_FILE),
            data_docs=gx_res.data_docs,
            gx_result=uri(rpt.GX_RESULT),
            **tfdv_links,
            drift=uri(rpt.DRIFT_JSON),
        ),
        timings=timings,
        alerts=[],
        override=None,
    )
    files[rpt.GATE_FILE] = rpt.gate_file(gate)
    rpt.write_report(
        lake, day, files, meta={"decision": gate.decision.value, "outcome": gate.outcome.value}
    )
    log.info(
        "gate %s: %s (%d failed expectations, %d TFDV anomalies, %d drifted)",
        day,
        decision.verdict,
        len(gx_res.failures),
        len(tfdv_res.anomalies),
        sum(d["drifted"] for d in drift),
    )
    return gate.to_json()
