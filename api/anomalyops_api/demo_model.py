"""A stand-in model that honours docs/model-contract.md, without TFX.

Tests, benchmarks and anyone trying the API before the pipeline has pushed anything use it:
``python -m anomalyops_api.demo_model <serving_dir> [--version N]`` writes one version with
the Pusher's own :func:`anomalyops.model_contract.publish`. The score is a standardized
squared distance from fixed means, times ``scale``, so callers can predict every score
exactly and tell versions apart by their answers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from anomalyops.model_contract import (
    EXPLANATION_OUTPUT,
    FLAG_OUTPUT,
    SCORE_OUTPUT,
    SIGNATURE,
    THRESHOLD_OUTPUT,
    publish,
)
from anomalyops.spec import FeatureSpec, load_spec
from anomalyops_api.model import _tensorflow


def feature_stats(spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """Means and standard deviations derived from each feature's [min, max] range."""
    means, stds = [], []
    for f in spec.features:
        low = f.min if f.min is not None else 0.0
        high = f.max if f.max is not None else low + 6.0
        means.append((low + high) / 2)
        stds.append((high - low) / 6)
    return np.asarray(means, np.float32), np.asarray(stds, np.float32)


def expected_scores(
    spec: FeatureSpec, features: Mapping[str, np.ndarray], *, scale: float = 1.0
) -> np.ndarray:
    """What the demo model answers, computed with numpy (float32, like the graph)."""
    means, stds = feature_stats(spec)
    x = np.stack([np.asarray(features[n], np.float32) for n in spec.feature_names], axis=1)
    z = (x - means) / stds
    return (np.float32(scale) * np.mean(np.square(z), axis=1)).astype(np.float32)


def expected_contributions(
    spec: FeatureSpec, features: Mapping[str, np.ndarray], *, scale: float = 1.0
) -> np.ndarray:
    """The demo model's ``feature_contributions`` ``[rows, model_columns]``: each feature's
    share of the score (derived columns: 0)."""
    means, stds = feature_stats(spec)
    x = np.stack([np.asarray(features[n], np.float32) for n in spec.feature_names], axis=1)
    share = np.float32(scale) * np.square((x - means) / stds) / len(spec.feature_names)
    by_name = dict(zip(spec.feature_names, share.T, strict=True))
    zeros = np.zeros(len(x), np.float32)
    return np.stack([by_name.get(n, zeros) for n in spec.model_columns], axis=1)


def metadata(
    spec: FeatureSpec, version: int, *, threshold: float, **overrides: Any
) -> dict[str, Any]:
    meta = {
        "model_name": "anomaly_detector",
        "version": version,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "training_spans": ["2026-11-13", "2026-11-26"],
        "threshold": threshold,
        "threshold_quantile": 0.99,
        "metrics": {"auc_pr": 0.8, "f1": 0.7},
        "feature_spec": spec.model_dump(mode="json"),
        "feature_spec_fingerprint": spec.fingerprint(),
        "pipeline_run_id": f"demo__{version}",
    }
    meta.update(overrides)
    return meta


def save_model(
    path: Path,
    spec: FeatureSpec,
    *,
    threshold: float = 3.0,
    scale: float = 1.0,
    explain: bool = True,
) -> None:
    """Write a SavedModel with the contract's ``serving_default`` signature to ``path``."""
    tf = _tensorflow()
    names = spec.feature_names
    means, stds = feature_stats(spec)

    class DemoDetector(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.means = tf.Variable(means, trainable=False)
            self.stds = tf.Variable(stds, trainable=False)
            self.scale = tf.Variable(np.float32(scale), trainable=False)
            self.threshold = tf.Variable(np.float32(threshold), trainable=False)

        # Every model column is an input (a temporal spec's derived ones too, as the contract
        # requires); the stand-in's score reads the features only.
        @tf.function(
            input_signature=[
                {n: tf.TensorSpec([None], tf.float32, name=n) for n in spec.model_columns}
            ]
        )
        def serve(self, inputs: dict) -> dict:
            x = tf.stack([inputs[n] for n in names], axis=1)
            share = self.scale * tf.square((x - self.means) / self.stds) / len(names)
            score = tf.reduce_sum(share, axis=1)
            limit = tf.fill(tf.shape(score), self.threshold)
            out = {SCORE_OUTPUT: score, THRESHOLD_OUTPUT: limit, FLAG_OUTPUT: score > limit}
            if explain:  # each model column's share of the score (derived columns: none)
                by_name = dict(zip(names, tf.unstack(share, axis=1), strict=True))
                zeros = tf.zeros_like(score)
                out[EXPLANATION_OUTPUT] = tf.stack(
                    [by_name.get(n, zeros) for n in spec.model_columns], axis=1
                )
            return out

    module = DemoDetector()
    tf.saved_model.save(module, str(path), signatures={SIGNATURE: module.serve})


def write_version(
    model_dir: Path,
    version: int,
    spec: FeatureSpec,
    *,
    threshold: float = 3.0,
    scale: float = 1.0,
    template: Path | None = None,
    **metadata_overrides: Any,
) -> Path:
    """Publish ``<model_dir>/<version>`` as the Pusher does (:func:`publish`); returns its
    directory. ``template`` copies an already saved model instead of building one (faster)."""

    def write_model(tmp: Path) -> None:
        if template is not None:
            # publish() writes the metadata afterwards, over the template's own.
            shutil.copytree(template, tmp)
        else:
            save_model(tmp, spec, threshold=threshold, scale=scale)

    meta = metadata(spec, version, threshold=threshold, **metadata_overrides)
    return publish(model_dir, version, write_model, meta)


def main(argv: list[str] | None = None) -> None:
    from anomalyops.settings import PROJECT_ROOT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="the serving directory")
    parser.add_argument("--version", type=int, default=None, help="default: now (UNIX s)")
    parser.add_argument("--spec", type=Path, default=PROJECT_ROOT / "config" / "feature_spec.yaml")
    parser.add_argument("--threshold", type=float, default=3.0)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    version = args.version or int(time.time())
    path = write_version(
        args.model_dir, version, load_spec(args.spec), threshold=args.threshold, scale=args.scale
    )
    print(path)


if __name__ == "__main__":
    main()
