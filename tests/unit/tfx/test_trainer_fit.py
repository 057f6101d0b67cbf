"""The Trainer's fit (autoencoder + detector tables), with and without trimming."""

from __future__ import annotations

import numpy as np
import pytest

from anomalyops_tfx.trainer import _ensemble_scores, fit_ensemble, schedule


@pytest.mark.parametrize(
    ("rows", "epochs", "batch"), [(1_000, 94, 32), (20_000, 38, 256), (14_000_000, 2, 1024)]
)
def test_schedule_adapts_to_the_window(rows, epochs, batch):
    assert schedule(rows, None, None) == (epochs, batch)
    assert schedule(rows, 7, 64) == (7, 64)  # explicit settings win


def _data(seed=0):
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(600, 2))
    x = (factors @ rng.normal(size=(2, 4)) + 0.2 * rng.normal(size=(600, 4))).astype(np.float32)
    x = (x - x.mean(0)) / x.std(0)
    planted = x[:400].copy()
    planted[:20] += 8.0  # the window's own anomalies: far out in every feature
    return planted, x[400:500], x[500:]


def test_trimming_drops_the_windows_own_anomalies_before_the_final_fit():
    train, norm, ev = _data()
    cfg = {"seed": 1, "learning_rate": 3e-3, "epochs": 3, "trim_share": 0.05}
    model, tables, history, _ = fit_ensemble(train, norm, ev, cfg)
    assert len(tables.reference) == 380  # 5 % of 400 rows dropped
    assert np.abs(tables.reference).max() < 6.0  # none of the planted rows is a neighbour
    scores = _ensemble_scores(tables, model, train)
    assert np.all(scores[:20] > np.quantile(scores[20:], 0.99))
    assert history.history["loss"]


def test_without_trimming_every_row_is_kept():
    train, norm, ev = _data()
    cfg = {"seed": 1, "learning_rate": 3e-3, "epochs": 2, "trim_share": 0.0}
    _, tables, _, _ = fit_ensemble(train, norm, ev, cfg)
    assert len(tables.reference) == 400
