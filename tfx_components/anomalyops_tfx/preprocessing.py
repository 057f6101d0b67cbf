"""Transform's ``preprocessing_fn``: z-score each model column, missing values imputed with the mean.

Only the model columns (``model_inputs``: the spec's features and their temporal derivations,
which ingest materialises in the lake) leave Transform (the label, timestamp and entity do
not), so the model can never see them. The evaluation gate reads the label from the raw eval Examples.
"""

from __future__ import annotations

from typing import Any

from anomalyops_tfx.features import model_inputs, spec_from_config


def _present_values(x):
    """A feature as a ``[batch, 1]`` SparseTensor of its present (non-null, non-NaN) values."""
    import tensorflow as tf

    if isinstance(x, tf.SparseTensor):
        # A VarLen feature holds at most one value a row (the schema's value count).
        x = tf.SparseTensor(x.indices, x.values, tf.stack([x.dense_shape[0], 1]))
        keep = tf.logical_not(tf.math.is_nan(x.values))
        return tf.sparse.retain(x, keep)
    x = tf.reshape(tf.cast(x, tf.float32), [-1, 1])
    keep = tf.logical_not(tf.math.is_nan(x))
    return tf.SparseTensor(
        indices=tf.where(keep),
        values=tf.boolean_mask(x, keep),
        dense_shape=tf.shape(x, out_type=tf.int64),
    )


def impute_and_scale(x):
    """``(x - mean) / std`` over the present values; a missing value becomes the mean (0).

    Scaling the present values and then filling the gaps with 0 is mean imputation in
    z-space, computed in one analyzer phase: TFT 1.16's multi-phase path (deep-copy
    optimisation) breaks on Beam 2.74 inside TFX's Transform, and one phase is also faster.
    The std is that of the observed values, not shrunk by the imputed ones.
    """
    import tensorflow as tf
    import tensorflow_transform as tft

    present = _present_values(x)
    present = tf.SparseTensor(
        present.indices, tf.cast(present.values, tf.float32), present.dense_shape
    )
    scaled = tft.scale_to_z_score(present)
    return tf.squeeze(tf.sparse.to_dense(scaled, default_value=0.0), axis=1)


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, Any]:
    """TFX Transform entry point; the feature spec arrives in ``custom_config``."""
    spec = spec_from_config(custom_config)
    missing = [name for name in model_inputs(spec) if name not in inputs]
    if missing:
        raise ValueError(
            f"Transform inputs lack spec features {missing}: the schema must describe every "
            f"feature of spec {spec.name!r} (got {sorted(inputs)})"
        )
    return {name: impute_and_scale(inputs[name]) for name in model_inputs(spec)}
