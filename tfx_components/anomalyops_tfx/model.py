"""The dense autoencoder and the serving module that wraps it with the Transform graph.

Size policy (``hidden_units=None``): for ``n`` features the bottleneck is
``b = max(1, round(sqrt(n)))`` and the encoder is ``[max(b + 1, ceil(3n / 4)), b]``; the decoder
mirrors it back to ``n``. The bottleneck is narrower than the input when ``n > 1``, so the
network must learn the features' correlations rather than copy them; ``sqrt(n)`` leaves room
for a few latent drivers (8 sensors -> [6, 3]) without letting it learn the identity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from anomalyops.model_contract import (
    EXPLANATION_OUTPUT,
    FLAG_OUTPUT,
    OUTPUTS,
    SCORE_OUTPUT,
    SIGNATURE,
    THRESHOLD_OUTPUT,
)


def layer_sizes(n_features: int, hidden_units: Sequence[int] | None = None) -> list[int]:
    """Encoder widths ending with the bottleneck."""
    if n_features < 1:
        raise ValueError(f"an autoencoder needs at least one feature, got {n_features}")
    if hidden_units:
        if any(int(u) < 1 for u in hidden_units):
            raise ValueError(f"hidden_units must be positive, got {list(hidden_units)}")
        return [int(u) for u in hidden_units]
    bottleneck = max(1, round(math.sqrt(n_features)))
    return [max(bottleneck + 1, math.ceil(3 * n_features / 4)), bottleneck]


def build_autoencoder(
    n_features: int,
    hidden_units: Sequence[int] | None = None,
    *,
    learning_rate: float = 1e-3,
    seed: int = 42,
):
    """A compiled tf_keras autoencoder on z-scored inputs (MSE loss)."""
    import tf_keras

    tf_keras.utils.set_random_seed(seed)
    encoder = layer_sizes(n_features, hidden_units)
    inputs = tf_keras.Input(shape=(n_features,), name="z")
    x = inputs
    for i, width in enumerate(encoder[:-1]):
        x = tf_keras.layers.Dense(width, activation="relu", name=f"encoder_{i}")(x)
    x = tf_keras.layers.Dense(encoder[-1], activation="linear", name="bottleneck")(x)
    for i, width in enumerate(reversed(encoder[:-1])):
        x = tf_keras.layers.Dense(width, activation="relu", name=f"decoder_{i}")(x)
    outputs = tf_keras.layers.Dense(n_features, activation="linear", name="reconstruction")(x)
    model = tf_keras.Model(inputs, outputs, name="autoencoder")
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate), loss="mse")
    return model


def reconstruction_error(z, reconstruction):
    """Per-row mean squared error in z-space: the anomaly score."""
    import tensorflow as tf

    return tf.reduce_mean(tf.square(z - reconstruction), axis=1)


def make_serving_module(
    model,
    tft_layer,
    raw_feature_spec: Mapping[str, Any],
    feature_names: Sequence[str],
    threshold: float,
    tables=None,
):
    """A ``tf.Module`` whose ``serve`` takes raw float columns and returns the contract's outputs.

    With ``tables`` (:class:`anomalyops_tfx.detector.DetectorTables`, part-score tables fitted)
    the score is the detector ensemble's; without, the autoencoder's reconstruction error alone.
    The threshold is a variable (``module.threshold``) so the pusher can write the calibrated
    value into the copy it serves without retraining.
    """
    import tensorflow as tf

    from anomalyops_tfx import detector

    names = list(feature_names)

    def to_raw(name: str, column):
        """Shape a ``[None]`` float column the way the Transform graph was traced for it."""
        spec = raw_feature_spec[name]
        column = tf.cast(column, spec.dtype)
        if isinstance(spec, tf.io.FixedLenFeature):
            return tf.reshape(column, [-1, *spec.shape])
        # VarLen (optional in the schema): NaN means missing, and Transform imputes it.
        dense = tf.reshape(column, [-1, 1])
        keep = tf.logical_not(tf.math.is_nan(dense))
        return tf.SparseTensor(
            indices=tf.where(keep),
            values=tf.boolean_mask(dense, keep),
            dense_shape=tf.shape(dense, out_type=tf.int64),
        )

    def constant(value):
        return tf.Variable(value, dtype=tf.float32, trainable=False)

    class AnomalyModule(tf.Module):
        def __init__(self):
            super().__init__(name="anomaly_detector")
            self.model = model
            self.tft_layer = tft_layer
            self.threshold = tf.Variable(float(threshold), dtype=tf.float32, trainable=False)
            self.tables = None
            if tables is not None:
                self.tables = {k: constant(v) for k, v in detector.table_tensors(tables).items()}
                self.part_tables = {
                    part: (constant(t.values), constant(t.lower_scale), constant(t.upper_scale))
                    for part, t in tables.part_scores.items()
                }

        @tf.function(
            input_signature=[{n: tf.TensorSpec([None], tf.float32, name=n) for n in names}]
        )
        def serve(self, features):
            transformed = self.tft_layer({n: to_raw(n, features[n]) for n in names})
            z = tf.stack([tf.reshape(transformed[n], [-1]) for n in names], axis=1)
            z = tf.cast(z, tf.float32)
            reconstruction = tf.cast(self.model(z, training=False), tf.float32)
            if self.tables is None:
                score = tf.cast(reconstruction_error(z, reconstruction), tf.float32)
                contrib = tf.square(z - reconstruction)
            else:
                raw, per_feature = detector.raw_parts(
                    z, reconstruction, self.tables, tables.neighbours
                )
                score, surprises = detector.combine(raw, self.part_tables, tables.weights)
                contrib = detector.contributions(per_feature, surprises)
            threshold = tf.fill(tf.shape(score), self.threshold)
            return {
                SCORE_OUTPUT: score,
                THRESHOLD_OUTPUT: threshold,
                FLAG_OUTPUT: score > threshold,
                EXPLANATION_OUTPUT: contrib,
            }

    return AnomalyModule()


def export(module, path: str) -> None:
    """Save ``module`` as a SavedModel with the contract's ``serving_default`` signature."""
    import tensorflow as tf

    tf.saved_model.save(module, path, signatures={SIGNATURE: module.serve.get_concrete_function()})


def rewrite_threshold(src: str, dst: str, threshold: float) -> None:
    """Copy the SavedModel at ``src`` to ``dst`` with its threshold variable set to ``threshold``.

    Loads the exported module (its Transform graph included) and saves it again, so the served
    signature returns the calibrated threshold.
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(src)
    if not hasattr(loaded, "threshold"):
        raise ValueError(f"{src} is not an anomalyops model (no threshold variable)")
    loaded.threshold.assign(float(threshold))
    tf.saved_model.save(loaded, dst, signatures={SIGNATURE: loaded.serve.get_concrete_function()})


def score(saved_model, columns: Mapping[str, Any], batch_size: int = 65536) -> dict[str, Any]:
    """Call ``serving_default`` of a loaded SavedModel on numpy columns, in batches."""
    import numpy as np
    import tensorflow as tf

    fn = saved_model.signatures[SIGNATURE]
    n = len(next(iter(columns.values())))
    parts: dict[str, list] = {k: [] for k in OUTPUTS}
    for start in range(0, n, batch_size):
        batch = {
            k: tf.constant(np.asarray(v[start : start + batch_size], dtype=np.float32))
            for k, v in columns.items()
        }
        out = fn(**batch)
        for k in OUTPUTS:
            parts[k].append(out[k].numpy())
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
