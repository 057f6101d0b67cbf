"""The served detector: an ensemble of four complementary scores, one SavedModel.

Each part sees anomalies the others miss (measured in ``docs/detector.md``):

* ``tails`` -- per-feature empirical tail probabilities (ECOD-style, two-sided): a value far
  out in any one feature. Fitted as a quantile table per feature; served with ``searchsorted``.
* ``knn`` -- mean distance to the ``k`` nearest rows of a stored reference sample in z-space:
  a row far from every dense region, whatever its marginals.
* ``copula_knn`` -- the same in copula space (each feature through its own empirical CDF and the
  normal quantile function): distances that skewed, heavy-tailed or discrete features do not
  dominate, so it catches odd *combinations* of ordinary values.
* ``autoencoder`` -- reconstruction error of the dense autoencoder: rows that break the learnt
  correlations between features.

Raw part scores live on different scales, so each is turned into its upper-tail probability
among held-out rows (a quantile table of the eval split's part scores) and the ensemble score is
``sum_c w_c * -log p_c``: how surprising the row is to each part, in nats. Beyond the tables'
last entries the tails are extrapolated exponentially (fitted on the last 1 %), so the most
extreme rows keep their order instead of tying at the table's edge.

Fitting is numpy (:func:`fit_tables`); scoring is TensorFlow (the ``score_*`` functions), the
same code eagerly at training time and inside the exported graph at serving time.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

PARTS = ("tails", "knn", "copula_knn", "autoencoder")
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "tails": 1.0,
    "knn": 1.0,
    "copula_knn": 1.0,
    # A quarter: on its own it ranks worst of the four on the ADBench tables, yet it is the
    # part that learns the sensors' correlations (docs/detector.md has the measurements).
    "autoencoder": 0.25,
}
MAX_QUANTILES = 2048
"""Rows of each quantile table (per feature, per part score)."""
MAX_REFERENCE_ROWS = 512
"""Rows of the kNN reference sample. Serving cost grows with it (``top_k`` per row); 512 ranks
as 2,048 did on every bundled table (k scaled, :func:`neighbours_for`) at ~10x the speed."""
DEFAULT_NEIGHBOURS = 100
MIN_TAIL_SCALE = 0.05
"""Floor of an extrapolated tail's scale (z units), so a constant feature cannot explode."""
MAX_SURPRISE = 50.0
"""Cap of one part's (or one feature's) -log p, in nats."""
CHUNK_ROWS = 4096
"""Rows per kNN distance block: bounds the ``[rows, reference]`` matrix (4096 x 512 x 4 B)."""


@dataclass
class QuantileTable:
    """Sorted values ``[q, columns]`` and the exponential scales of both tails ``[columns]``."""

    values: np.ndarray
    lower_scale: np.ndarray
    upper_scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, max_rows: int = MAX_QUANTILES) -> QuantileTable:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if len(x) < 2:
            raise ValueError(f"a quantile table needs at least 2 rows, got {len(x)}")
        if len(x) <= max_rows:
            values = np.sort(x, axis=0)
        else:
            probs = (np.arange(max_rows) + 0.5) / max_rows
            values = np.quantile(x, probs, axis=0)
        q = len(values)
        m = max(1, q // 100)
        span = math.log((m + 0.5) / 0.5)  # -log of the tail mass over the last m entries
        upper = (values[-1] - values[-1 - m]) / span
        lower = (values[m] - values[0]) / span
        return cls(
            values=values.astype(np.float32),
            lower_scale=np.maximum(lower, MIN_TAIL_SCALE).astype(np.float32),
            upper_scale=np.maximum(upper, MIN_TAIL_SCALE).astype(np.float32),
        )


@dataclass
class DetectorTables:
    """Everything but the autoencoder's weights, fitted on the training window."""

    features: QuantileTable
    reference: np.ndarray  # [r, n] z-space rows
    neighbours: int
    residuals: QuantileTable | None = None  # |z - reconstruction| per feature, training rows
    predictability: float | None = None  # mean R^2 of each feature on the others
    part_scores: dict[str, QuantileTable] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))


PREDICTABILITY_RANGE = (0.8, 0.9)
MAX_AUTOENCODER_BOOST = 8.0
"""The autoencoder's weight is multiplied by 1 (mean R^2 <= 0.8) up to 8 (>= 0.9); see
:func:`autoencoder_boost`."""

NORMALISATION_SHARE = 0.25
"""Share of the training rows held back from fitting to normalise the parts' scores."""


def split_for_normalisation(
    x: np.ndarray, share: float = NORMALISATION_SHARE, seed: int = 42
) -> tuple[np.ndarray, np.ndarray]:
    """(rows to fit the parts on, rows to normalise their scores on), disjoint and seeded.

    The normalisation rows must be fresh to every part -- a row's distance to a reference that
    holds it, or the reconstruction error of a row the network trained on, is too small -- and
    they must not be the rows the evaluation gate calibrates the threshold on, or the threshold
    is calibrated in-sample and alarms more often than it promises on new data.
    """
    x = np.asarray(x)
    n_norm = round(len(x) * share)
    if n_norm < 2 or len(x) - n_norm < 4:
        raise ValueError(
            f"{len(x)} training rows are too few to hold {share:.0%} back for normalisation"
        )
    order = np.random.default_rng(seed).permutation(len(x))
    return x[order[n_norm:]], x[order[:n_norm]]


def linear_predictability(x: np.ndarray, max_rows: int = 20_000, seed: int = 0) -> float:
    """Mean R^2 of each column regressed (least squares) on all the others.

    Near 1 when the features are driven by a few shared factors (sensors of one plant), so
    that a row breaking their correlations is what an anomaly looks like; lower for tables
    whose columns carry independent information.
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) > max_rows:
        x = x[np.random.default_rng(seed).choice(len(x), size=max_rows, replace=False)]
    if x.shape[1] < 2:
        return 0.0
    r2 = []
    for j in range(x.shape[1]):
        others = np.c_[np.delete(x, j, axis=1), np.ones(len(x))]
        coef, *_ = np.linalg.lstsq(others, x[:, j], rcond=None)
        var = x[:, j].var()
        r2.append(0.0 if var <= 1e-12 else 1.0 - (x[:, j] - others @ coef).var() / var)
    return float(np.clip(np.mean(r2), 0.0, 1.0))


def autoencoder_boost(predictability: float) -> float:
    """How much the autoencoder's weight grows with the window's linear predictability.

    Measured (docs/detector.md): on the seven ADBench tables (mean R^2 0.37-0.79) the
    autoencoder part costs ranking quality beyond a quarter weight; on the simulator's
    correlated sensors (0.92) it is the part that sees broken correlations and stuck
    sensors, and the tail part alone ranks below chance. 1x up to R^2 0.8, 8x from 0.9.
    """
    low, high = PREDICTABILITY_RANGE
    share = min(1.0, max(0.0, (predictability - low) / (high - low)))
    return 1.0 + (MAX_AUTOENCODER_BOOST - 1.0) * share


NEIGHBOURS_BASIS = 2048
"""``k`` counts neighbours among this many rows (or all the rows, when fewer)."""


def neighbours_for(
    reference_rows: int, k: int = DEFAULT_NEIGHBOURS, rows: int | None = None
) -> int:
    """``k`` for a reference sample of ``reference_rows`` drawn from ``rows``.

    ``k`` is a share: ``k`` neighbours among ``min(rows, NEIGHBOURS_BASIS)`` rows. A smaller
    sample scales it down, so the part measures the same neighbourhood size, only from fewer
    rows (the serving cost: ``top_k`` grows with the sample). At most half the sample, at
    least 1.
    """
    basis = min(rows or reference_rows, NEIGHBOURS_BASIS)
    scaled = round(k * reference_rows / basis) if basis > reference_rows else k
    return max(1, min(scaled, reference_rows // 2))


def fit_tables(
    x_train: np.ndarray,
    *,
    seed: int = 42,
    max_reference: int = MAX_REFERENCE_ROWS,
    neighbours: int = DEFAULT_NEIGHBOURS,
    weights: Mapping[str, float] | None = None,
    reference_share: float = 1.0,
    adapt_autoencoder: bool = True,
) -> DetectorTables:
    """Feature quantiles and the kNN reference sample; part-score tables come later
    (:func:`fit_part_scores`), from held-out rows."""
    x_train = np.asarray(x_train, dtype=np.float32)
    if x_train.ndim != 2 or len(x_train) < 4:
        raise ValueError(f"need a [rows >= 4, features] matrix to fit on, got {x_train.shape}")
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    unknown = set(weights) - set(PARTS)
    if unknown or not any(w > 0 for w in weights.values()):
        raise ValueError(f"detector weights must name parts of {PARTS} (some > 0), got {weights}")
    rng = np.random.default_rng(seed)
    r = max(2, min(max_reference, int(len(x_train) * reference_share)))
    reference = x_train[rng.choice(len(x_train), size=r, replace=False)]
    weights = {p: float(weights.get(p, 0.0)) for p in PARTS}
    predictability = linear_predictability(x_train, seed=seed)
    if adapt_autoencoder:
        weights["autoencoder"] *= autoencoder_boost(predictability)
    return DetectorTables(
        features=QuantileTable.fit(x_train),
        reference=reference,
        neighbours=neighbours_for(r, neighbours, rows=len(x_train)),
        weights=weights,
        predictability=predictability,
    )


# -- TensorFlow: used eagerly to fit part-score tables and traced into the serving graph --------
def _tail_surprise(table_values, lower_scale, upper_scale, x, *, two_sided: bool):
    """``-log p`` of ``x [rows, cols]`` under each column's table: the upper tail or both tails.

    ECDF by mid-rank (ties count half), floored at half a table step, then extrapolated with an
    exponential tail beyond the table's ends.
    """
    import tensorflow as tf

    sorted_cols = tf.transpose(table_values)  # [cols, q]
    xt = tf.transpose(x)  # [cols, rows]
    q = tf.cast(tf.shape(sorted_cols)[1], tf.float32)
    below_or_equal = tf.cast(tf.searchsorted(sorted_cols, xt, side="right"), tf.float32)
    below = tf.cast(tf.searchsorted(sorted_cols, xt, side="left"), tf.float32)
    floor = 0.5 / q
    upper_p = tf.maximum((q - below) / q, floor)
    beyond_top = tf.maximum(xt - sorted_cols[:, -1:], 0.0) / upper_scale[:, None]
    upper = -tf.math.log(upper_p) + beyond_top
    if not two_sided:
        return tf.transpose(tf.minimum(upper, MAX_SURPRISE))
    lower_p = tf.maximum(below_or_equal / q, floor)
    beyond_bottom = tf.maximum(sorted_cols[:, :1] - xt, 0.0) / lower_scale[:, None]
    lower = -tf.math.log(lower_p) + beyond_bottom
    return tf.transpose(tf.minimum(tf.maximum(upper, lower), MAX_SURPRISE))


def to_copula(table_values, x):
    """Each column through its empirical CDF (mid-rank) and the normal quantile function."""
    import tensorflow as tf

    sorted_cols = tf.transpose(table_values)
    xt = tf.transpose(x)
    q = tf.cast(tf.shape(sorted_cols)[1], tf.float32)
    mid = (
        tf.cast(tf.searchsorted(sorted_cols, xt, side="left"), tf.float32)
        + tf.cast(tf.searchsorted(sorted_cols, xt, side="right"), tf.float32)
    ) / 2.0
    u = tf.clip_by_value((mid + 0.5) / (q + 1.0), 0.5 / (q + 1.0), 1.0 - 0.5 / (q + 1.0))
    return tf.transpose(tf.math.ndtri(u))


def knn_distance(reference, x, k: int):
    """Mean Euclidean distance of each row of ``x`` to its ``k`` nearest reference rows.

    Computed in blocks of :data:`CHUNK_ROWS` rows so memory stays bounded for any batch.
    """
    import tensorflow as tf

    ref_sq = tf.reduce_sum(tf.square(reference), axis=1)  # [r]

    def block(rows):
        d2 = (
            tf.reduce_sum(tf.square(rows), axis=1, keepdims=True)
            - 2.0 * tf.matmul(rows, reference, transpose_b=True)
            + ref_sq[None, :]
        )
        nearest = -tf.math.top_k(-d2, k=k, sorted=False).values
        return tf.reduce_mean(tf.sqrt(tf.maximum(nearest, 0.0)), axis=1)

    n = tf.shape(x)[0]
    blocks = (n + CHUNK_ROWS - 1) // CHUNK_ROWS
    padded = tf.pad(x, [[0, blocks * CHUNK_ROWS - n], [0, 0]])
    out = tf.map_fn(
        block,
        tf.reshape(padded, [blocks, CHUNK_ROWS, tf.shape(x)[1]]),
        fn_output_signature=tf.float32,
    )
    return tf.reshape(out, [-1])[:n]


def raw_parts(z, reconstruction, tables: Mapping[str, object], k: int):
    """Raw part scores ``{part: [rows]}`` and per-feature surprises ``{part: [rows, n]}``.

    ``tables`` holds tensors (or arrays): ``feature_values``, ``feature_lower``,
    ``feature_upper``, ``reference``, ``copula_reference``.
    """
    import tensorflow as tf

    per_feature_tails = _tail_surprise(
        tables["feature_values"],
        tables["feature_lower"],
        tables["feature_upper"],
        z,
        two_sided=True,
    )
    residual = tf.abs(z - reconstruction)
    if "residual_values" in tables:
        per_feature_error = _tail_surprise(
            tables["residual_values"],
            tables["residual_lower"],
            tables["residual_upper"],
            residual,
            two_sided=False,
        )
        ae_score = tf.reduce_sum(per_feature_error, axis=1)
    else:
        per_feature_error = tf.square(residual)
        ae_score = tf.reduce_mean(per_feature_error, axis=1)
    copula = to_copula(tables["feature_values"], z)
    scores = {
        "tails": tf.reduce_sum(per_feature_tails, axis=1),
        "knn": knn_distance(tables["reference"], z, k),
        "copula_knn": knn_distance(tables["copula_reference"], copula, k),
        "autoencoder": ae_score,
    }
    return scores, {"tails": per_feature_tails, "autoencoder": per_feature_error}


def combine(scores, part_tables: Mapping[str, tuple], weights: Mapping[str, float]):
    """``sum_c w_c * -log p_c`` with ``p_c`` a part score's upper tail among held-out rows.

    Returns the ensemble score ``[rows]`` and each part's weighted surprise ``{part: [rows]}``.
    """
    import tensorflow as tf

    surprises = {}
    for part, (values, lower, upper) in part_tables.items():
        w = float(weights.get(part, 0.0))
        if w <= 0.0:
            continue
        raw = scores[part][:, None]
        s = _tail_surprise(values, lower, upper, raw, two_sided=False)
        # A part that cannot score a row (a diverged network) makes the row's score NaN, which
        # the evaluation gate refuses, instead of a surprise read off a table's edge.
        s = tf.where(tf.math.is_finite(raw), s, tf.fill(tf.shape(s), float("nan")))
        surprises[part] = w * tf.reshape(s, [-1])
    return tf.add_n(list(surprises.values())), surprises


def contributions(per_feature, surprises):
    """Each feature's share of the score ``[rows, n]``, from the parts that decompose by feature.

    The tails part splits by each feature's own surprise, the autoencoder by each feature's
    squared error; the kNN parts do not decompose and are left out (the shares then sum to the
    tails and autoencoder parts, not to the whole score).
    """
    import tensorflow as tf

    total = None
    for part in ("tails", "autoencoder"):
        if part not in surprises:
            continue
        f = per_feature[part]
        share = f / tf.maximum(tf.reduce_sum(f, axis=1, keepdims=True), 1e-12)
        term = share * surprises[part][:, None]
        total = term if total is None else total + term
    return total


def table_tensors(tables: DetectorTables) -> dict[str, np.ndarray]:
    """The feature-level arrays the graph needs (the copula reference precomputed)."""
    copula_reference = to_copula(tables.features.values, tables.reference).numpy()
    residuals = {}
    if tables.residuals is not None:
        residuals = {
            "residual_values": tables.residuals.values,
            "residual_lower": tables.residuals.lower_scale,
            "residual_upper": tables.residuals.upper_scale,
        }
    return {
        **residuals,
        "feature_values": tables.features.values,
        "feature_lower": tables.features.lower_scale,
        "feature_upper": tables.features.upper_scale,
        "reference": tables.reference,
        "copula_reference": copula_reference.astype(np.float32),
    }


def fit_part_scores(tables: DetectorTables, raw_eval_scores: Mapping[str, np.ndarray]) -> None:
    """Part-score quantile tables from held-out rows' raw part scores (in place)."""
    for part in PARTS:
        if tables.weights.get(part, 0.0) > 0:
            values = np.asarray(raw_eval_scores[part], dtype=np.float64)
            finite = values[np.isfinite(values)]
            if len(finite) < 2:
                # Nothing to normalise with (a diverged autoencoder): the part scores NaN at
                # serving (see :func:`combine`), so the evaluation gate refuses the model.
                log.warning("part %r gave no finite score on the normalisation rows", part)
                finite = np.array([0.0, 1.0])
            tables.part_scores[part] = QuantileTable.fit(finite)
