"""Trainer ``run_fn``: fit the autoencoder on the window's train split, export for serving.

Transform is not materialized (the window has several Examples artifacts); the Transform
graph is applied here to the raw train/eval Examples, and again inside the exported model.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

from anomalyops_tfx.features import model_inputs, spec_from_config

log = logging.getLogger(__name__)

TRAINING_KEY = "training"
"""``custom_config`` key of the training hyper-parameters (see :func:`training_config`)."""
INFO_FILE = "training_info.json"


def training_config(settings) -> dict[str, Any]:
    """The hyper-parameters the Trainer needs, from ``Settings.training``."""
    t = settings.training
    return {
        "epochs": t.epochs,
        "batch_size": t.batch_size,
        "learning_rate": t.learning_rate,
        "early_stopping_patience": t.early_stopping_patience,
        "hidden_units": t.hidden_units,
        "seed": t.seed,
        "threshold_quantile": t.threshold_quantile,
        "detector_weights": dict(t.detector_weights),
        "neighbours": t.neighbours,
        "reference_rows": t.reference_rows,
        "adaptive_autoencoder_weight": t.adaptive_autoencoder_weight,
        "trim_share": t.trim_share,
    }


def schedule(rows: int, epochs: int | None, batch_size: int | None) -> tuple[int, int]:
    """(epochs, batch size): the configured values, or ones adapted to ``rows``.

    About 3,000 gradient steps whatever the window's size (2-200 epochs; early stopping ends
    sooner), batches of ``rows / 64`` rounded to a power of two (32-1024): a 1,000-row window
    gets ~95 epochs of 32, a 20,000-row one ~38 of 256, 14 M rows 2 of 1024.
    """
    if batch_size is None:
        batch_size = int(min(1024, max(32, 2 ** round(math.log2(max(rows, 1) / 64)))))
    if epochs is None:
        steps_per_epoch = max(1, math.ceil(rows / batch_size))
        epochs = int(min(200, max(2, math.ceil(3000 / steps_per_epoch))))
    return epochs, batch_size


def transformed_matrix(patterns: list[str], tft_output, feature_names: list[str], batch_size=4096):
    """All rows of gzipped tf.Example files as a ``[rows, features]`` z-space float32 matrix."""
    import numpy as np
    import tensorflow as tf

    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise FileNotFoundError(f"no Examples files match {patterns}")
    raw_spec = tft_output.raw_feature_spec()
    parse_spec = {n: raw_spec[n] for n in feature_names}
    layer = tft_output.transform_features_layer()
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size)
    parts = []
    for serialized in ds:
        out = layer(tf.io.parse_example(serialized, parse_spec))
        parts.append(np.stack([np.reshape(out[n].numpy(), [-1]) for n in feature_names], axis=1))
    if not parts:
        raise ValueError(f"Examples files {files} hold no rows")
    return np.concatenate(parts).astype(np.float32)


def fit_ensemble(x_train, x_norm, x_eval, cfg: dict[str, Any], extra_callbacks=()):
    """The autoencoder and the detector's tables, fitted; returns (model, tables, history,
    (epochs, batch size)).

    With ``trim_share`` > 0 the fit runs twice: the rows the first fit scores highest (the
    window's own anomalies: a training window is contaminated) are dropped and every part is
    refitted on the rest, the autoencoder continuing from its weights. Without it a 45-minute
    stuck sensor inside the window sits in the kNN reference and the autoencoder learns it, so
    the same event's held-out rows, and the next such event, look normal.
    """
    import numpy as np
    import tf_keras

    from anomalyops_tfx import detector
    from anomalyops_tfx import model as model_lib

    epochs, batch_size = schedule(len(x_train), cfg.get("epochs"), cfg.get("batch_size"))
    model = model_lib.build_autoencoder(
        x_train.shape[1],
        cfg.get("hidden_units"),
        learning_rate=cfg["learning_rate"],
        seed=cfg["seed"],
    )

    def fit_network(rows, n_epochs):
        return model.fit(
            rows,
            rows,
            validation_data=(x_eval, x_eval),
            epochs=n_epochs,
            batch_size=batch_size,
            shuffle=True,
            callbacks=[
                tf_keras.callbacks.EarlyStopping(
                    monitor="val_loss",
                    patience=cfg.get("early_stopping_patience", 5),
                    restore_best_weights=True,
                ),
                *extra_callbacks,
            ],
            verbose=0,
        )

    def fit_tables(rows):
        tables = detector.fit_tables(
            rows,
            seed=cfg["seed"],
            max_reference=cfg.get("reference_rows", detector.MAX_REFERENCE_ROWS),
            neighbours=cfg.get("neighbours", detector.DEFAULT_NEIGHBOURS),
            weights=cfg.get("detector_weights"),
            adapt_autoencoder=cfg.get("adaptive_autoencoder_weight", True),
            reference_share=cfg.get("reference_share", 1.0),
        )
        tables.residuals = detector.QuantileTable.fit(
            np.abs(rows - model.predict(rows, batch_size=65536, verbose=0))
        )
        # Each part's score is normalised by its distribution on rows no part was fitted on;
        # the eval split stays fresh for the evaluation gate's threshold.
        raw, _ = detector.raw_parts(
            x_norm, model(x_norm, training=False), detector.table_tensors(tables), tables.neighbours
        )
        detector.fit_part_scores(tables, {k: v.numpy() for k, v in raw.items()})
        return tables

    history = fit_network(x_train, epochs)
    tables = fit_tables(x_train)
    trim = float(cfg.get("trim_share", 0.0) or 0.0)
    scores = _ensemble_scores(tables, model, x_train) if trim > 0.0 else None
    if scores is not None and np.isfinite(scores).all():  # a diverged fit is left to the gate
        keep = scores <= np.quantile(scores, 1.0 - trim)
        log.info("Refitting without the %d highest-scoring training rows", int((~keep).sum()))
        fit_network(x_train[keep], max(2, epochs // 2))
        tables = fit_tables(x_train[keep])
    return model, tables, history, (epochs, batch_size)


def _ensemble_scores(tables, model, x) -> Any:
    """The ensemble score of z-space rows ``x`` (the serving graph's math, eagerly)."""
    from anomalyops_tfx import detector

    raw, _ = detector.raw_parts(
        x, model(x, training=False), detector.table_tensors(tables), tables.neighbours
    )
    part_tables = {
        p: (t.values, t.lower_scale, t.upper_scale) for p, t in tables.part_scores.items()
    }
    score, _ = detector.combine(raw, part_tables, tables.weights)
    return score.numpy()


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (passed by dotted path: ``anomalyops_tfx.trainer.run_fn``)."""
    import numpy as np
    import tensorflow_transform as tft
    import tf_keras

    from anomalyops_tfx import detector
    from anomalyops_tfx import model as model_lib

    spec = spec_from_config(fn_args.custom_config)
    cfg = fn_args.custom_config[TRAINING_KEY]
    names = model_inputs(spec)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)

    x_window = transformed_matrix(fn_args.train_files, tft_output, names)
    x_eval = transformed_matrix(fn_args.eval_files, tft_output, names)
    x_train, x_norm = detector.split_for_normalisation(x_window, seed=cfg["seed"])
    log.info(
        "Fitting on %d rows, normalising part scores on %d, early stopping on %d eval rows",
        len(x_train),
        len(x_norm),
        len(x_eval),
    )

    model, tables, history, (epochs, batch_size) = fit_ensemble(
        x_train,
        x_norm,
        x_eval,
        cfg,
        extra_callbacks=[tf_keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)],
    )
    module = model_lib.make_serving_module(
        model,
        tft_output.transform_features_layer(),
        tft_output.raw_feature_spec(),
        names,
        float("inf"),  # provisional, replaced below
        tables=tables,
    )
    # Provisional: the evaluation gate recalibrates on held-out rows before anything is served.
    train_scores = _ensemble_scores(tables, model, x_train)
    provisional = float(np.quantile(train_scores, cfg["threshold_quantile"]))
    module.threshold.assign(provisional)
    model_lib.export(module, fn_args.serving_model_dir)

    info = {
        "layer_sizes": model_lib.layer_sizes(len(names), cfg["hidden_units"]),
        "features": names,
        "train_rows": len(x_train),
        "normalisation_rows": len(x_norm),
        "eval_rows": len(x_eval),
        "epochs": epochs,
        "batch_size": batch_size,
        "epochs_run": len(history.history["loss"]),
        "detector": {
            "weights": tables.weights,
            "neighbours": tables.neighbours,
            "reference_rows": len(tables.reference),
            "linear_predictability": tables.predictability,
        },
        "final_loss": float(history.history["loss"][-1]),
        "best_val_loss": float(min(history.history["val_loss"])),
        "provisional_threshold": provisional,
        "feature_spec_fingerprint": spec.fingerprint(),
    }
    import tensorflow as tf

    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, INFO_FILE), "w") as f:
        f.write(json.dumps(info, indent=2))
    log.info("Exported model to %s: %s", fn_args.serving_model_dir, info)
