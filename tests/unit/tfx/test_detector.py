"""The detector ensemble's parts, each against a plain reference implementation."""

from __future__ import annotations

import numpy as np
import pytest

from anomalyops_tfx import detector


def _surprise(table: detector.QuantileTable, x: np.ndarray, two_sided: bool) -> np.ndarray:
    return detector._tail_surprise(
        table.values,
        table.lower_scale,
        table.upper_scale,
        x.astype(np.float32),
        two_sided=two_sided,
    ).numpy()


def test_quantile_table_keeps_small_samples_whole_and_subsamples_large_ones():
    rng = np.random.default_rng(0)
    small = detector.QuantileTable.fit(rng.normal(size=(100, 3)))
    assert small.values.shape == (100, 3)
    assert np.all(np.diff(small.values, axis=0) >= 0)
    large = detector.QuantileTable.fit(rng.normal(size=(50_000, 2)), max_rows=512)
    assert large.values.shape == (512, 2)
    assert np.all(large.upper_scale >= detector.MIN_TAIL_SCALE)
    with pytest.raises(ValueError, match="at least 2 rows"):
        detector.QuantileTable.fit(np.zeros((1, 2)))


def test_tail_surprise_is_the_empirical_tail_then_grows_past_the_table():
    x = np.arange(1000, dtype=np.float64)[:, None]  # 0..999, a uniform sample
    table = detector.QuantileTable.fit(x)
    s = _surprise(table, np.array([[500.0], [990.0], [999.0], [1010.0], [1100.0]]), False)[:, 0]
    # Upper tail P(X >= x): 0.5 at the median, 1 % ten steps from the top.
    assert s[0] == pytest.approx(-np.log(0.5), abs=1e-3)
    assert s[1] == pytest.approx(-np.log(0.01), abs=1e-3)
    # Past the last entry it keeps growing, so the most extreme rows keep their order.
    assert s[1] < s[2] < s[3] < s[4] <= detector.MAX_SURPRISE
    two = _surprise(table, np.array([[0.0], [999.0], [500.0]]), True)[:, 0]
    assert two[0] == pytest.approx(two[1], rel=0.02)  # both tails count
    assert two[2] < two[0]


def test_ties_count_half_so_a_discrete_feature_is_not_surprising_at_its_mode():
    x = np.r_[np.zeros(900), np.ones(100)][:, None]
    table = detector.QuantileTable.fit(x)
    s = _surprise(table, np.array([[0.0], [1.0]]), True)[:, 0]
    assert s[0] < s[1] < -np.log(0.05)


def test_knn_distance_matches_brute_force_across_blocks():
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(1)
    reference = rng.normal(size=(300, 4)).astype(np.float32)
    x = rng.normal(size=(detector.CHUNK_ROWS + 37, 4)).astype(np.float32)
    got = detector.knn_distance(reference, x, k=7).numpy()
    want = NearestNeighbors(n_neighbors=7).fit(reference).kneighbors(x)[0].mean(axis=1)
    assert got.shape == (len(x),)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


def test_copula_maps_each_feature_through_its_ecdf_to_normal_scores():
    from scipy.stats import norm

    rng = np.random.default_rng(2)
    skewed = rng.lognormal(sigma=2.0, size=(2000, 1)).astype(np.float32)
    table = detector.QuantileTable.fit(skewed)
    z = detector.to_copula(table.values, np.sort(skewed, axis=0)).numpy()[:, 0]
    assert np.all(np.diff(z) >= 0)  # order kept
    assert abs(np.mean(z)) < 0.05 and abs(np.std(z) - 1) < 0.05  # heavy tail gone
    assert z[-1] == pytest.approx(norm.ppf((2000 - 0.5 + 0.5) / 2001), abs=0.05)


def test_fit_tables_validates_and_sizes_the_reference():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5000, 3))
    tables = detector.fit_tables(x, max_reference=256, neighbours=100)
    assert tables.reference.shape == (256, 3)
    # k is a share: 100 among 2,048 rows, so 12 among a sample of 256.
    assert tables.neighbours == 12
    assert detector.fit_tables(x, max_reference=2048, neighbours=100).neighbours == 100
    assert detector.fit_tables(x[:700], max_reference=512).neighbours == 73  # 100 of 700
    assert detector.fit_tables(x[:400], max_reference=512).neighbours == 100  # all 400 kept
    small = detector.fit_tables(x[:60])
    assert small.reference.shape == (60, 3)
    assert small.neighbours == 30  # at most half the reference
    assert detector.fit_tables(x[:60], reference_share=0.5).reference.shape == (30, 3)
    with pytest.raises(ValueError, match="parts of"):
        detector.fit_tables(x, weights={"isolation": 1.0})
    with pytest.raises(ValueError, match="rows >= 4"):
        detector.fit_tables(x[:2])


def _fitted(train: np.ndarray, held_out: np.ndarray, weights=None):
    tables = detector.fit_tables(train, weights=weights)
    recon = lambda z: np.zeros_like(z)  # noqa: E731  (no autoencoder needed for the other parts)
    tables.residuals = detector.QuantileTable.fit(np.abs(train))
    raw, _ = detector.raw_parts(
        held_out, recon(held_out), detector.table_tensors(tables), tables.neighbours
    )
    detector.fit_part_scores(tables, {k: v.numpy() for k, v in raw.items()})

    def score(x):
        x = x.astype(np.float32)
        raw, per_feature = detector.raw_parts(
            x, recon(x), detector.table_tensors(tables), tables.neighbours
        )
        parts = {p: (t.values, t.lower_scale, t.upper_scale) for p, t in tables.part_scores.items()}
        total, surprises = detector.combine(raw, parts, tables.weights)
        return total.numpy(), surprises, detector.contributions(per_feature, surprises).numpy()

    return tables, score


def test_ensemble_ranks_planted_anomalies_first_and_names_the_feature():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    cov = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    normal = rng.multivariate_normal(np.zeros(3), cov, size=3000).astype(np.float32)
    _, score = _fitted(normal[:2400], normal[2400:])
    test = rng.multivariate_normal(np.zeros(3), cov, size=500).astype(np.float32)
    spikes = test[:20].copy()
    spikes[:, 2] += 6.0  # far out in feature 2 alone
    broken = test[20:40].copy()
    broken[:, 0] = rng.choice([-1.0, 1.0], size=20) * rng.uniform(1.5, 2.0, size=20)
    broken[:, 1] = -broken[:, 0]  # ordinary marginals, broken correlation
    x = np.r_[spikes, broken, test[40:]]
    y = np.r_[np.ones(40), np.zeros(460)]
    total, surprises, contrib = score(x)
    assert roc_auc_score(y, total) > 0.97
    assert set(surprises) == set(detector.PARTS)
    assert np.all(np.argmax(contrib[:20], axis=1) == 2)  # the spiked feature explains the spike
    # Held-out normal rows: about 1 nat of surprise per unit of weight on average.
    normal_total = score(normal[2400:])[0]
    assert np.mean(normal_total) == pytest.approx(sum(detector.DEFAULT_WEIGHTS.values()), rel=0.2)


def test_zero_weight_drops_a_part():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(600, 2)).astype(np.float32)
    tables, score = _fitted(x[:400], x[400:], weights={"tails": 1.0, "knn": 0.0})
    assert set(tables.part_scores) == {"tails"}
    _, surprises, _ = score(x[:10])
    assert set(surprises) == {"tails"}


def test_normalisation_rows_are_disjoint_from_the_fitting_rows():
    x = np.arange(400, dtype=np.float32).reshape(100, 4)
    fit, norm = detector.split_for_normalisation(x, share=0.25, seed=1)
    assert len(fit) == 75 and len(norm) == 25
    assert not set(fit[:, 0]) & set(norm[:, 0])
    assert set(fit[:, 0]) | set(norm[:, 0]) == set(x[:, 0])
    again, _ = detector.split_for_normalisation(x, share=0.25, seed=1)
    np.testing.assert_array_equal(fit, again)  # a re-run fits on the same rows
    with pytest.raises(ValueError, match="too few"):
        detector.split_for_normalisation(x[:5])


def test_predictability_tells_correlated_sensors_from_independent_columns():
    rng = np.random.default_rng(6)
    factors = rng.normal(size=(4000, 2))
    sensors = factors @ rng.normal(size=(2, 6)) + 0.1 * rng.normal(size=(4000, 6))
    independent = rng.normal(size=(4000, 6))
    assert detector.linear_predictability(sensors) > 0.95
    assert detector.linear_predictability(independent) < 0.05
    assert detector.linear_predictability(independent[:, :1]) == 0.0


def test_autoencoder_weight_grows_only_on_predictable_windows():
    assert detector.autoencoder_boost(0.5) == 1.0
    assert detector.autoencoder_boost(0.8) == 1.0
    assert detector.autoencoder_boost(0.85) == pytest.approx(4.5)
    assert detector.autoencoder_boost(0.99) == detector.MAX_AUTOENCODER_BOOST
    rng = np.random.default_rng(7)
    factors = rng.normal(size=(3000, 1))
    sensors = np.c_[factors, factors, factors] + 0.05 * rng.normal(size=(3000, 3))
    tables = detector.fit_tables(sensors)
    assert tables.predictability > 0.9
    boosted = detector.DEFAULT_WEIGHTS["autoencoder"] * detector.MAX_AUTOENCODER_BOOST
    assert tables.weights["autoencoder"] == pytest.approx(boosted)
    fixed = detector.fit_tables(sensors, adapt_autoencoder=False)
    assert fixed.weights["autoencoder"] == detector.DEFAULT_WEIGHTS["autoencoder"]


def test_a_part_that_cannot_score_makes_the_row_nan_for_the_gate_to_refuse():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    tables = detector.fit_tables(x[:300])
    tables.residuals = detector.QuantileTable.fit(np.abs(x[:300]))
    diverged = np.full_like(x[300:], np.nan)  # the autoencoder's output after divergence
    raw, _ = detector.raw_parts(x[300:], diverged, detector.table_tensors(tables), 10)
    detector.fit_part_scores(tables, {k: v.numpy() for k, v in raw.items()})  # no crash
    parts = {p: (t.values, t.lower_scale, t.upper_scale) for p, t in tables.part_scores.items()}
    total, surprises = detector.combine(raw, parts, tables.weights)
    assert np.isnan(total.numpy()).all()
    assert np.isfinite(surprises["tails"].numpy()).all()
