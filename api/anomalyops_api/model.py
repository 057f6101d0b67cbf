"""One served model version: its metadata, its signature, and how to load it.

TensorFlow is imported here lazily (inside :func:`load_model`), so importing the service,
and every test that never loads a model, stays fast.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from anomalyops.model_contract import (
    EXPLANATION_OUTPUT,
    FLAG_OUTPUT,
    METADATA_FILE,
    OUTPUT_DTYPES,
    SCORE_OUTPUT,
    SIGNATURE,
    THRESHOLD_OUTPUT,
    ModelMetadata,
)
from anomalyops.spec import FeatureSpec, FeatureSpecError, parse_spec

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """A version directory could not be turned into a servable model."""


def read_metadata(version_dir: Path) -> ModelMetadata:
    path = version_dir / METADATA_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path}: unreadable metadata: {exc}") from None
    try:
        return ModelMetadata.model_validate(data)
    except ValidationError as exc:
        raise ModelLoadError(f"{path}: invalid metadata: {exc}") from None


@dataclass(eq=False)
class LoadedModel:
    """A loaded, warmed-up version. Immutable once built; requests keep a reference to it
    for their whole duration, which is what lets a swap never cut a request in half."""

    version: int
    path: Path
    metadata: ModelMetadata
    spec: FeatureSpec
    loaded_at: dt.datetime
    load_seconds: float
    _predict: Any = field(repr=False)
    _keepalive: Any = field(default=None, repr=False)
    """The object ``tf.saved_model.load`` returned: its signatures die with it."""
    explains: bool = False
    """Whether the signature returns per-feature contributions (``explain=k`` works)."""

    @property
    def threshold(self) -> float:
        return self.metadata.threshold

    @property
    def feature_names(self) -> list[str]:
        return self.spec.feature_names

    def predict(self, features: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """float32 inputs by feature name -> (anomaly_score float32, is_anomaly bool)."""
        scores, flags, _ = self.predict_explained(features, explain=False)
        return scores, flags

    def predict_explained(
        self, features: Mapping[str, np.ndarray], explain: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Like :meth:`predict`, plus ``[rows, model_columns]`` contributions when asked for
        and the model has them (None otherwise)."""
        # The signature reads the features and their temporal derivations (model_columns).
        out = self._predict(**{name: features[name] for name in self.spec.model_columns})
        contributions = None
        if explain and EXPLANATION_OUTPUT in out:
            contributions = np.asarray(out[EXPLANATION_OUTPUT])
        return np.asarray(out[SCORE_OUTPUT]), np.asarray(out[FLAG_OUTPUT]), contributions


def _tensorflow() -> Any:
    """Import TensorFlow on first use (importing it costs 10+ s and ~600 MB)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _check_signature(signature: Any, spec: FeatureSpec) -> None:
    _, inputs = signature.structured_input_signature
    expected = set(spec.model_columns)
    if set(inputs) != expected:
        missing = sorted(expected - set(inputs))
        extra = sorted(set(inputs) - expected)
        raise ModelLoadError(
            f"signature {SIGNATURE!r} inputs do not match the feature spec "
            f"(missing {missing}, unexpected {extra})"
        )
    for name, tensor_spec in inputs.items():
        if tensor_spec.dtype.name != "float32" or tensor_spec.shape.rank != 1:
            raise ModelLoadError(
                f"signature input {name!r} is {tensor_spec.dtype.name}{tensor_spec.shape}, "
                "expected float32 of shape [None]"
            )
    outputs = signature.structured_outputs
    for name, dtype in OUTPUT_DTYPES.items():
        if name not in outputs or outputs[name].dtype.name != dtype:
            raise ModelLoadError(f"signature {SIGNATURE!r} lacks output {name!r} ({dtype})")


def _warm_up(model: LoadedModel, rows: int) -> None:
    """Run the graph once so the first real request pays no tracing/allocation cost, and
    prove the outputs have the contract's shape before the version is allowed to serve."""
    features = {}
    for feature in model.spec.features:
        low = feature.min if feature.min is not None else 0.0
        high = feature.max if feature.max is not None else low + 1.0
        features[feature.name] = np.linspace(low, high, rows, dtype=np.float32)
    for derived in model.spec.derived_columns:
        features[derived.name] = np.zeros(rows, dtype=np.float32)
    scores, flags = model.predict(features)
    if scores.shape != (rows,) or flags.shape != (rows,):
        raise ModelLoadError(
            f"warm-up returned shapes {scores.shape}/{flags.shape}, expected ({rows},)"
        )
    out = model._predict(**{k: v[:1] for k, v in features.items()})
    served = float(np.asarray(out[THRESHOLD_OUTPUT])[0])
    if not math.isclose(served, model.threshold, rel_tol=1e-4, abs_tol=1e-6):
        log.warning(
            "version %d: metadata threshold %.6g differs from the graph's %.6g; "
            "is_anomaly follows the graph",
            model.version,
            model.threshold,
            served,
        )


def load_model(version_dir: Path, version: int, *, warmup_rows: int = 1024) -> LoadedModel:
    """Load and warm up one version directory; raises :class:`ModelLoadError`."""
    started = time.perf_counter()
    metadata = read_metadata(version_dir)
    if metadata.version != version:
        log.warning(
            "%s: metadata says version %d; the directory name (%d) wins",
            version_dir,
            metadata.version,
            version,
        )
    try:
        spec = parse_spec(metadata.feature_spec, source=f"{version_dir / METADATA_FILE}")
    except FeatureSpecError as exc:
        raise ModelLoadError(str(exc)) from None
    tf = _tensorflow()
    try:
        loaded = tf.saved_model.load(str(version_dir))
    except Exception as exc:  # TF raises a zoo of types for corrupt protos/checkpoints
        raise ModelLoadError(f"{version_dir}: tf.saved_model.load failed: {exc}") from exc
    signature = loaded.signatures.get(SIGNATURE)
    if signature is None:
        raise ModelLoadError(f"{version_dir}: no {SIGNATURE!r} signature")
    _check_signature(signature, spec)
    model = LoadedModel(
        version=version,
        path=version_dir,
        metadata=metadata,
        spec=spec,
        loaded_at=dt.datetime.now(dt.timezone.utc),
        load_seconds=0.0,
        _predict=signature,
        _keepalive=loaded,
        explains=EXPLANATION_OUTPUT in signature.structured_outputs,
    )
    try:
        _warm_up(model, warmup_rows)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"{version_dir}: warm-up call failed: {exc}") from exc
    model.load_seconds = time.perf_counter() - started
    return model
