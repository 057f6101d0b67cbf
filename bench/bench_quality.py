"""Detection-quality harness: the project's real training path on bring-your-own data, beside peers.

For each case: a feature spec is inferred from the training part, the rows become daily landing
files, each day goes through the real ingest + GX/TFDV gate (the ingest DAG's logic), the TFX
pipeline (`create_pipeline()` under LocalDagRunner) trains, gates and pushes **at default
settings**, and the held-out part is scored **through the scoring API** (uvicorn on loopback).
PyOD's IForest, ECOD, COPOD and KNN (defaults; IForest seeded) run on the same split, standardised
with the training part's mean and deviation and trained on the same contaminated rows. Prints one
table (ROC-AUC / AUC-PR per detector, our false-alarm rate as calibrated vs as observed, the
gate's drift warnings and window restarts over the shuffled days), writes JSON.

    .venv/bin/python bench/bench_quality.py                        # every bundled case
    .venv/bin/python bench/bench_quality.py --cases cardio vowels
    .venv/bin/python bench/bench_quality.py --csv my.csv --label y --timestamp ts   # your data

Bundled cases (bench/data, licences there): the seven ADBench tables (seeded 60/40 split, rows
shuffled into days: nothing drifts, so every drift warning is a false one) and NAB
machine_temperature_system_failure (window-level recall and false-alarm events per day).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow_hotfix  # noqa: F401  (CVE-2023-47248) before this process reads any Parquet
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"
ADBENCH = {
    "cardio": "6_cardio.npz",
    "pendigits": "28_pendigits.npz",
    "mammography": "23_mammography.npz",
    "PageBlocks": "27_PageBlocks.npz",
    "vowels": "40_vowels.npz",
    "Wilt": "44_Wilt.npz",
    "breastw": "4_breastw.npz",
}
PEERS = ("IForest", "ECOD", "COPOD", "KNN")


@dataclass
class Case:
    name: str
    train: pd.DataFrame
    test: pd.DataFrame
    label: str = "label"
    timestamp: str = "timestamp"
    rows_per_day: int | None = None
    start: dt.date = dt.date(2026, 1, 1)
    extra: dict = field(default_factory=dict)


# -- cases --------------------------------------------------------------------------------
def rows_per_day_for(train_rows: int) -> int:
    """Days of 200-500 rows: at least ~10 days where the table allows."""
    return max(200, min(500, train_rows // 10))


def adbench_case(name: str, file: str, seed: int, rows_per_day: int | None = None) -> Case:
    data = np.load(DATA / "adbench" / file, allow_pickle=True)
    x, y = data["X"].astype("float64"), data["y"].astype("int8")
    df = pd.DataFrame(x, columns=[f"x{i:02d}" for i in range(x.shape[1])])
    df["label"] = y
    idx = np.random.default_rng(seed).permutation(len(df))
    cut = int(len(df) * 0.6)
    return Case(
        name,
        df.iloc[idx[:cut]].reset_index(drop=True),
        df.iloc[idx[cut:]].reset_index(drop=True),
        rows_per_day=rows_per_day or rows_per_day_for(cut),
    )


def nab_case(train_days: int) -> Case:
    """machine_temperature with lag features, so the detector sees a little of the recent past."""
    raw = pd.read_csv(
        DATA / "nab" / "machine_temperature_system_failure.csv", parse_dates=["timestamp"]
    )
    windows = json.loads((DATA / "nab" / "combined_windows.json").read_text())[
        "realKnownCause/machine_temperature_system_failure.csv"
    ]
    windows = [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in windows]
    v = raw["value"]
    df = pd.DataFrame(
        {
            "timestamp": raw["timestamp"].dt.tz_localize("UTC"),
            "value": v,
            "delta_1": v.diff().fillna(0.0),
            "dev_1h": (v - v.rolling(12, min_periods=1).mean()),
            "std_1h": v.rolling(12, min_periods=2).std().fillna(0.0),
            "dev_1d": (v - v.rolling(288, min_periods=1).mean()),
        }
    )
    ts = raw["timestamp"]
    df["label"] = np.zeros(len(df), dtype="int8")
    for a, b in windows:
        df.loc[(ts >= a) & (ts <= b), "label"] = 1
    first = df["timestamp"].dt.date.iloc[0]
    cut = first + dt.timedelta(days=train_days)
    in_train = df["timestamp"].dt.date < cut
    test = df[~in_train].reset_index(drop=True)
    start = test["timestamp"].iloc[0].tz_localize(None)
    held_out = [(a, b) for a, b in windows if b >= start]  # windows the model never trained on
    return Case(
        "nab_machine_temperature",
        df[in_train].reset_index(drop=True),
        test,
        extra={"windows": held_out},
    )


# -- the real path ------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_case(case: Case, work: Path, *, epochs: int | None = None, seed: int = 0) -> dict:
    from anomalyops.history import infer_spec, split_into_days, write_landing
    from anomalyops.ingest import ingest
    from anomalyops.lake import Lake, Zone
    from anomalyops.settings import Settings
    from anomalyops.validation.day_actions import promote
    from anomalyops.validation.quality_gate import run_gate
    from anomalyops.validation.report_model import GateReport, Verdict
    from anomalyops.validation.schema import infer_curated_schema, write_schema

    t0 = time.perf_counter()
    spec = infer_spec(case.train, name=case.name, timestamp=case.timestamp, label=case.label)
    spec_path = work / "feature_spec.yaml"
    spec_path.write_text(
        yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True), sort_keys=False)
    )
    days = split_into_days(case.train, spec, start=case.start, rows_per_day=case.rows_per_day)
    env = {
        "ANOMALYOPS_LAKE_ROOT": str(work / "lake"),
        "ANOMALYOPS_FEATURE_SPEC_PATH": str(spec_path),
        "ANOMALYOPS_SOURCE": "landing",
        "ANOMALYOPS_PIPELINE_ROOT": str(work / "tfx"),
        "ANOMALYOPS_SERVING_MODEL_DIR": str(work / "serving"),
        "ANOMALYOPS_VALIDATION__SCHEMA_PATH": str(work / "schema.pbtxt"),
        "ANOMALYOPS_TRAINING__WINDOW_DAYS": str(len(days)),
    }
    if epochs is not None:  # an explicit override; the default adapts to the window
        env["ANOMALYOPS_TRAINING__EPOCHS"] = str(epochs)
    else:
        os.environ.pop("ANOMALYOPS_TRAINING__EPOCHS", None)
    os.environ.update(env)
    settings = Settings()
    write_schema(infer_curated_schema(spec, list(days.values())), work / "schema.pbtxt", spec)
    lake = Lake(settings.lake_root)
    write_landing(lake, days)
    gate_outcomes: dict[str, int] = {}
    restarts = 0
    for day in days:
        ingest(day, settings, spec)
        gate = GateReport.model_validate(run_gate(day, settings, spec))
        gate_outcomes[gate.decision.value] = gate_outcomes.get(gate.decision.value, 0) + 1
        restarts += gate.drift.restart
        if gate.decision != Verdict.FAIL:  # warn = drifted but valid: the remedy is training on it
            promote(day, settings)
    validated = len(lake.partitions(Zone.VALIDATED))
    t_lake = time.perf_counter() - t0

    from anomalyops_tfx.runners.local_runner import run as run_pipeline

    run_pipeline(settings, backfill=True)
    versions = sorted(p.name for p in (work / "serving").iterdir() if p.name.isdigit())
    if not versions:
        raise RuntimeError(f"{case.name}: the pipeline pushed no model (see {work}/tfx)")
    meta = json.loads((work / "serving" / versions[-1] / "anomalyops_model.json").read_text())
    t_train = time.perf_counter() - t0 - t_lake

    scores = score_through_api(case, spec, work)
    t_total = time.perf_counter() - t0
    result = {
        "case": case.name,
        "train_rows": len(case.train),
        "test_rows": len(case.test),
        "features": len(spec.features),
        "days": len(days),
        "validated_days": validated,
        "gate": gate_outcomes,
        "drift_warnings": gate_outcomes.get("warn", 0),
        "window_restarts": restarts,
        "model_version": int(versions[-1]),
        "threshold": meta["threshold"],
        "calibrated_false_alarm_rate": round(1.0 - settings.training.threshold_quantile, 4),
        "eval_gate_metrics": meta.get("metrics", {}),
        "seconds": {
            "lake_and_gate": round(t_lake, 1),
            "train": round(t_train, 1),
            "total": round(t_total, 1),
        },
    }
    y = case.test[case.label].to_numpy()
    result.update(quality(scores, y, case))
    result["peers"] = peers(case, spec, seed)
    return result


def peers(case: Case, spec, seed: int) -> dict[str, dict[str, float]]:
    """PyOD's standard detectors on the same split: ROC-AUC and AUC-PR of each."""
    import warnings

    from pyod.models.copod import COPOD
    from pyod.models.ecod import ECOD
    from pyod.models.iforest import IForest
    from pyod.models.knn import KNN
    from sklearn.metrics import average_precision_score, roc_auc_score

    names = spec.feature_names
    train = case.train[names].to_numpy(dtype=float)
    test = case.test[names].to_numpy(dtype=float)
    fill = np.nanmean(train, axis=0)
    train = np.where(np.isnan(train), fill, train)
    test = np.where(np.isnan(test), fill, test)
    mu, sd = train.mean(axis=0), train.std(axis=0)
    sd[sd == 0] = 1.0
    train, test = (train - mu) / sd, (test - mu) / sd
    y = case.test[case.label].to_numpy()
    out = {}
    for name, make in {
        "IForest": lambda: IForest(random_state=seed),
        "ECOD": ECOD,
        "COPOD": COPOD,
        "KNN": KNN,
    }.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = make().fit(train).decision_function(test)
        out[name] = {
            "roc_auc": round(float(roc_auc_score(y, s)), 4),
            "auc_pr": round(float(average_precision_score(y, s)), 4),
        }
    return out


def score_through_api(case: Case, spec, work: Path) -> pd.DataFrame:
    import httpx

    port = _free_port()
    env = {
        **os.environ,
        "ANOMALYOPS_API_MODEL_DIR": str(work / "serving"),
        "ANOMALYOPS_API_STATE_DIR": str(work / "api"),
        "ANOMALYOPS_API_KEYS": "bench-key",
        "ANOMALYOPS_API_ADMIN_KEY": "bench-admin-key",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "anomalyops_api.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError("the API did not become ready within 120 s")
        test = case.test.copy()
        if spec.timestamp.column not in test.columns:
            test.insert(
                0,
                spec.timestamp.column,
                pd.Timestamp(case.start, tz="UTC")
                + pd.to_timedelta(np.arange(len(test)), unit="s"),
            )
        upload = work / "test.csv"
        test[[*spec.key_columns, *spec.feature_names]].to_csv(upload, index=False)
        with open(upload, "rb") as f:
            resp = httpx.post(
                f"{url}/v1/score",
                params={"format": "json"},
                headers={"X-API-Key": "bench-key"},
                files={"file": ("test.csv", f, "text/csv")},
                timeout=300,
            )
        resp.raise_for_status()
        body = resp.json()
        if body["rows"] != len(test):
            raise RuntimeError(f"the API scored {body['rows']} of {len(test)} rows")
        return pd.DataFrame(body["results"])
    finally:
        server.terminate()
        server.wait(timeout=30)


def quality(scores: pd.DataFrame, y: np.ndarray, case: Case) -> dict:
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    s = scores["anomaly_score"].to_numpy(dtype=float)
    flagged = scores["is_anomaly"].astype(bool).to_numpy()
    out = {
        "roc_auc": round(float(roc_auc_score(y, s)), 4),
        "auc_pr": round(float(average_precision_score(y, s)), 4),
        "f1_at_threshold": round(float(f1_score(y, flagged)), 4),
        "false_alarm_rate": round(float(flagged[y == 0].mean()), 4),
        "recall_at_threshold": round(float(flagged[y == 1].mean()), 4),
    }
    if "windows" in case.extra:
        ts = pd.to_datetime(case.test["timestamp"], utc=True).dt.tz_localize(None)
        hit = [bool(flagged[(ts >= a) & (ts <= b)].any()) for a, b in case.extra["windows"]]
        inside = np.zeros(len(ts), dtype=bool)
        for a, b in case.extra["windows"]:
            inside |= ((ts >= a) & (ts <= b)).to_numpy()
        outside = flagged & ~inside
        events = int(np.sum(outside[1:] & ~outside[:-1]) + outside[0])  # runs of alarms
        n_days = (ts.max() - ts.min()).total_seconds() / 86_400
        out.update(
            {
                "window_recall": f"{sum(hit)}/{len(hit)}",
                "false_alarm_events_per_day": round(events / n_days, 2),
            }
        )
    return out


def print_table(results: list[dict]) -> None:
    """ROC-AUC / AUC-PR of ours and each peer, our false alarms, the gate's drift verdicts."""
    cols = ["ours", *PEERS]
    print(
        f"\n{'case':<24}"
        + "".join(f"{c:>15}" for c in cols)
        + f"{'FAR cal/obs':>14}{'F1@thr':>8}{'warn/restart/days':>19}"
    )

    def cell(r: dict, c: str) -> str:
        m = r if c == "ours" else r["peers"][c]
        return f"{m['roc_auc']:.3f} / {m['auc_pr']:.3f}"

    for r in results:
        print(
            f"{r['case']:<24}"
            + "".join(f"{cell(r, c):>15}" for c in cols)
            + f"{r['calibrated_false_alarm_rate']:>7.3f}/{r['false_alarm_rate']:<6.3f}"
            + f"{r['f1_at_threshold']:>8.3f}"
            + f"{r['drift_warnings']:>9}/{r['window_restarts']}/{r['days']}"
        )
        if "window_recall" in r:
            print(
                f"{'':<24}windows hit {r['window_recall']}, "
                f"false-alarm events/day {r['false_alarm_events_per_day']}"
            )
    tables = [r for r in results if r["case"] in ADBENCH]
    if len(tables) > 1:
        means = {
            c: (
                np.mean([(r if c == "ours" else r["peers"][c])["roc_auc"] for r in tables]),
                np.mean([(r if c == "ours" else r["peers"][c])["auc_pr"] for r in tables]),
            )
            for c in cols
        }
        print(
            f"{f'mean of {len(tables)} ADBench':<24}"
            + "".join(f"{f'{a:.3f} / {b:.3f}':>15}" for a, b in means.values())
        )
        gaps = {r["case"]: r["roc_auc"] - r["peers"]["IForest"]["roc_auc"] for r in tables}
        worst = min(gaps, key=gaps.get)
        print(f"largest ROC-AUC gap below IForest: {gaps[worst]:+.3f} ({worst})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="*", default=[*ADBENCH, "nab"])
    parser.add_argument(
        "--epochs", type=int, default=None, help="override (default: adapted to the window)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", help="your own data: a CSV with numeric features (+ label)")
    parser.add_argument("--label", default="label")
    parser.add_argument("--timestamp", default="timestamp")
    parser.add_argument("--rows-per-day", type=int, default=None)
    parser.add_argument("--output", default=str(ROOT / "var" / "bench" / "quality.json"))
    parser.add_argument("--workdir", help="keep each case's lake, pipeline root and models here")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    cases: list[Case] = []
    if args.csv:
        df = pd.read_csv(args.csv)
        if args.label not in df.columns:
            parser.error(f"{args.csv}: no label column {args.label!r} (columns: {list(df)})")
        idx = np.random.default_rng(args.seed).permutation(len(df))
        cut = int(len(df) * 0.6)
        cases.append(
            Case(
                Path(args.csv).stem,
                df.iloc[idx[:cut]].reset_index(drop=True),
                df.iloc[idx[cut:]].reset_index(drop=True),
                label=args.label,
                timestamp=args.timestamp,
                rows_per_day=args.rows_per_day or rows_per_day_for(cut),
            )
        )
    for name in [] if args.csv else args.cases:
        if name in ADBENCH:
            cases.append(adbench_case(name, ADBENCH[name], args.seed, args.rows_per_day))
        elif name == "nab":
            cases.append(nab_case(train_days=14))
        else:
            parser.error(f"unknown case {name!r} (choose from {[*ADBENCH, 'nab']})")

    results = []
    root = (
        Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="anomalyops-quality-"))
    )
    for case in cases:
        work = root / case.name
        work.mkdir(parents=True, exist_ok=True)
        print(
            f"== {case.name}: {len(case.train)} train rows, {len(case.test)} test rows -> {work}",
            flush=True,
        )
        results.append(run_case(case, work, epochs=args.epochs, seed=args.seed))
        print(json.dumps(results[-1], indent=1, default=str), flush=True)

    print_table(results)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"generated_at": dt.datetime.now(dt.timezone.utc).isoformat(), "results": results},
            indent=2,
            default=str,
        )
    )
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
