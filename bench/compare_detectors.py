"""Which detector to serve: each part of the ensemble alone, combinations, and PyOD's peers.

In-process (no lake, no TFX; TensorFlow eager): the same seeded 60/40 splits as
``bench_quality.py``, standardised with the training part; the training part is split 80/20 as the
pipeline splits train/eval (early stopping and the parts' normalisation on the 20 %). Uses the
project's own ``anomalyops_tfx.detector`` and autoencoder, so a change there shows here first.
Prints ROC-AUC / AUC-PR per dataset and configuration, and the means over the ADBench tables;
``simulator`` is the demo's own correlated telemetry (7 days to train on, the next to score).

    .venv/bin/python bench/compare_detectors.py                 # every configuration
    .venv/bin/python bench/compare_detectors.py --configs tails IForest --datasets cardio
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_quality import ADBENCH  # noqa: E402

ALL = {"tails": 1.0, "knn": 1.0, "copula_knn": 1.0, "autoencoder": 1.0}
CONFIGS = {  # (weights, reference share, adaptive AE weight[, trim share[, Trainer settings]])
    "tails": ({"tails": 1.0}, 1.0, False),
    "knn": ({"knn": 1.0}, 1.0, False),
    "copula_knn": ({"copula_knn": 1.0}, 1.0, False),
    "autoencoder": ({"autoencoder": 1.0}, 1.0, False),
    "all equal": (ALL, 1.0, False),
    "AE 2": ({**ALL, "autoencoder": 2.0}, 1.0, False),
    "AE 0.25": ({**ALL, "autoencoder": 0.25}, 1.0, False),
    "no autoencoder": ({**ALL, "autoencoder": 0.0}, 1.0, False),
    "default, reference = half": (None, 0.5, True),
    "default, no trimming": (None, 1.0, True, 0.0),
    "default (AE 0.25, x8 if R2 >= 0.9)": (None, 1.0, True),
    # Serving cost: the kNN parts' top_k grows with the reference sample; k scales with it
    # (detector.neighbours_for), so each size measures the same neighbourhood (docs/detector.md).
    **{
        f"default, reference {r}": (None, 1.0, True, None, {"reference_rows": r})
        for r in (2048, 1024, 512, 256)
    },
}
PEERS = ("IForest", "ECOD", "COPOD", "KNN")


SIMULATOR = "simulator"


def simulator_split(days: int = 8):
    """The demo's telemetry: 7 simulated days (3 % labelled anomalies, several kinds a day) to
    train on, the next day to score; correlated sensors, unlike the ADBench tables."""
    import datetime as dt

    from anomalyops.settings import Settings
    from anomalyops.sources.simulator import SimulatorConfig, simulate_day
    from anomalyops.spec import load_spec

    spec = load_spec(Settings().feature_spec_path)
    cfg = SimulatorConfig(rows_per_day=1440, anomaly_rate=0.03, max_event_share=0.2)
    frames = [
        simulate_day(spec, dt.date(2026, 10, 1) + dt.timedelta(days=i), cfg) for i in range(days)
    ]
    names = spec.feature_names
    train = np.concatenate([f[names].to_numpy(float) for f in frames[:-1]])
    test = frames[-1][names].to_numpy(float)
    mu, sd = train.mean(0), train.std(0)
    sd[sd == 0] = 1.0
    y = frames[-1][spec.label_column].to_numpy()
    return ((train - mu) / sd).astype(np.float32), ((test - mu) / sd).astype(np.float32), y


def split(name: str, seed: int = 0):
    if name == SIMULATOR:
        return simulator_split()
    data = np.load(ROOT / "bench" / "data" / "adbench" / ADBENCH[name], allow_pickle=True)
    x, y = data["X"].astype("float64"), data["y"].astype("int8")
    idx = np.random.default_rng(seed).permutation(len(x))
    cut = int(len(x) * 0.6)
    train, test = x[idx[:cut]], x[idx[cut:]]
    mu, sd = train.mean(0), train.std(0)
    sd[sd == 0] = 1.0
    return (
        ((train - mu) / sd).astype(np.float32),
        ((test - mu) / sd).astype(np.float32),
        y[idx[cut:]],
    )


def ours(train, test, weights, share, adapt=True, trim=None, extra=None, seed=42):
    """Fit the Trainer's way (``fit_ensemble``); return (test scores, the gate's threshold)."""
    from anomalyops.settings import TrainingSettings
    from anomalyops_tfx import detector
    from anomalyops_tfx.trainer import _ensemble_scores, fit_ensemble

    defaults = TrainingSettings()
    p = np.random.default_rng(1).permutation(len(train))
    cut = int(len(train) * 0.8)
    window, ev = train[p[:cut]], train[p[cut:]]
    tr, norm = detector.split_for_normalisation(window, seed=seed)
    cfg = {
        "seed": seed,
        "learning_rate": defaults.learning_rate,
        "detector_weights": weights,
        "adaptive_autoencoder_weight": adapt,
        "reference_share": share,
        "trim_share": defaults.trim_share if trim is None else trim,
        "reference_rows": defaults.reference_rows,
        "neighbours": defaults.neighbours,
        **(extra or {}),
    }
    model, tables, _, _ = fit_ensemble(tr, norm, ev, cfg)
    # The evaluation gate's threshold: the 99th percentile of the fresh eval rows' scores.
    threshold = float(np.quantile(_ensemble_scores(tables, model, ev), 0.99))
    return _ensemble_scores(tables, model, test), threshold


def peer(name, train, test):
    from pyod.models.copod import COPOD
    from pyod.models.ecod import ECOD
    from pyod.models.iforest import IForest
    from pyod.models.knn import KNN

    make = {"IForest": lambda: IForest(random_state=0), "ECOD": ECOD, "COPOD": COPOD, "KNN": KNN}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make[name]().fit(train).decision_function(test), None


def main(argv=None) -> int:
    from sklearn.metrics import average_precision_score, roc_auc_score

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="*", default=[*CONFIGS, *PEERS])
    parser.add_argument("--datasets", nargs="*", default=[*ADBENCH, SIMULATOR])
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    rows = {}
    far: dict[str, list[float]] = {c: [] for c in args.configs}
    for config in args.configs:
        t0 = time.perf_counter()
        cells = []
        for name in args.datasets:
            train, test, y = split(name)
            if config in PEERS:
                s, threshold = peer(config, train, test)
            else:
                s, threshold = ours(train, test, *CONFIGS[config])
            cells.append((roc_auc_score(y, s), average_precision_score(y, s)))
            if threshold is not None:
                far[config].append(float(np.mean(s[y == 0] > threshold)))
        rows[config] = cells
        print(f"{config}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    header = f"{'configuration':<36}" + "".join(f"{d:>14}" for d in args.datasets)
    n_tables = sum(d in ADBENCH for d in args.datasets)
    print(header + f"{f'mean of {n_tables}':>14}")
    for config, cells in rows.items():
        mean = np.mean([c for c, d in zip(cells, args.datasets, strict=True) if d in ADBENCH], 0)
        print(
            f"{config:<36}"
            + "".join(f"{a:>7.3f}/{b:.3f}" for a, b in cells)
            + f"{mean[0]:>7.3f}/{mean[1]:.3f}"
        )
    for config, rates in far.items():
        if rates:
            print(
                f"{config}: false-alarm rate on test normal rows at the 99th-percentile threshold "
                f"(calibrated 0.010): " + ", ".join(f"{r:.3f}" for r in rates)
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
