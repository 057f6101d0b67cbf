"""Detection-quality harness: the project's real training path on bring-your-own data.

For each case: a feature spec is inferred from the training part, the rows become daily landing
files, each day goes through the real ingest + GX/TFDV gate (the ingest DAG's logic), the TFX
pipeline (`create_pipeline()` under LocalDagRunner) trains, gates and pushes, and the held-out
part is scored **through the scoring API** (uvicorn on loopback). Prints a table, writes JSON.

    .venv/bin/python bench/bench_quality.py                       # all bundled cases
    .venv/bin/python bench/bench_quality.py --cases cardio --epochs 60
    .venv/bin/python bench/bench_quality.py --csv my.csv --label y --timestamp ts   # your data

Bundled cases (bench/data, licences there): ADBench cardio and pendigits (60/40 split, ROC-AUC
against the PyOD benchmark's published figures) and NAB machine_temperature_system_failure
(window-level recall and false alarms per day).
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
# PyOD benchmark (60/40 split, ROC-AUC): https://pyod.readthedocs.io/en/latest/benchmark.html
BASELINES = {
    "cardio": {"IForest": 0.92, "AutoEncoder": 0.82},
    "pendigits": {"IForest": 0.94, "AutoEncoder": 0.78},
}


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
def adbench_case(name: str, file: str, seed: int, rows_per_day: int) -> Case:
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
        rows_per_day=rows_per_day,
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


def run_case(case: Case, work: Path, *, epochs: int) -> dict:
    from anomalyops.history import infer_spec, split_into_days, write_landing
    from anomalyops.ingest import ingest
    from anomalyops.lake import Lake, Zone
    from anomalyops.settings import Settings
    from anomalyops.validation.gate import promote, run_gate
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
        "ANOMALYOPS_TRAINING__EPOCHS": str(epochs),
    }
    os.environ.update(env)
    settings = Settings()
    write_schema(infer_curated_schema(spec, list(days.values())), work / "schema.pbtxt", spec)
    lake = Lake(settings.lake_root)
    write_landing(lake, days)
    gate_outcomes: dict[str, int] = {}
    for day in days:
        ingest(day, settings, spec)
        gate = run_gate(day, settings, spec)
        gate_outcomes[gate["decision"]] = gate_outcomes.get(gate["decision"], 0) + 1
        if gate["decision"] != "fail":  # "warn" = drifted but valid: the remedy is training on it
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
        "model_version": int(versions[-1]),
        "threshold": meta["threshold"],
        "eval_gate_metrics": meta.get("metrics", {}),
        "seconds": {
            "lake_and_gate": round(t_lake, 1),
            "train": round(t_train, 1),
            "total": round(t_total, 1),
        },
    }
    y = case.test[case.label].to_numpy()
    result.update(quality(scores, y, case))
    return result


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
    if case.name in BASELINES:
        out["published"] = BASELINES[case.name]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="*", default=["cardio", "pendigits", "nab"])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", help="your own data: a CSV with numeric features (+ label)")
    parser.add_argument("--label", default="label")
    parser.add_argument("--timestamp", default="timestamp")
    parser.add_argument("--rows-per-day", type=int, default=500)
    parser.add_argument("--output", default=str(ROOT / "var" / "bench" / "quality.json"))
    parser.add_argument("--workdir", help="keep each case's lake, pipeline root and models here")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    cases: list[Case] = []
    if args.csv:
        df = pd.read_csv(args.csv)
        idx = np.random.default_rng(args.seed).permutation(len(df))
        cut = int(len(df) * 0.6)
        cases.append(
            Case(
                Path(args.csv).stem,
                df.iloc[idx[:cut]].reset_index(drop=True),
                df.iloc[idx[cut:]].reset_index(drop=True),
                label=args.label,
                timestamp=args.timestamp,
                rows_per_day=args.rows_per_day,
            )
        )
    for name in [] if args.csv else args.cases:
        if name == "cardio":
            cases.append(adbench_case("cardio", "6_cardio.npz", args.seed, rows_per_day=200))
        elif name == "pendigits":
            cases.append(adbench_case("pendigits", "28_pendigits.npz", args.seed, rows_per_day=500))
        elif name == "nab":
            cases.append(nab_case(train_days=14))
        else:
            parser.error(f"unknown case {name!r}")

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
        results.append(run_case(case, work, epochs=args.epochs))
        print(json.dumps(results[-1], indent=1, default=str), flush=True)

    print(
        f"\n{'case':<26}{'ROC-AUC':>8}{'AUC-PR':>8}{'F1@thr':>8}{'FAR':>7}  published / window figures"
    )
    for r in results:
        extra = (
            ", ".join(f"{k} {v}" for k, v in r.get("published", {}).items())
            or f"windows hit {r.get('window_recall')}, false alarms/day {r.get('false_alarm_events_per_day')}"
        )
        print(
            f"{r['case']:<26}{r['roc_auc']:>8.3f}{r['auc_pr']:>8.3f}{r['f1_at_threshold']:>8.3f}"
            f"{r['false_alarm_rate']:>7.3f}  {extra}"
        )
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
