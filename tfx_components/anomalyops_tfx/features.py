"""The feature spec as the pipeline sees it: column roles, TF parse specs, custom_config.

The spec travels through TFX as JSON inside ``custom_config`` (Transform, Trainer) and exec
properties (evaluation gate, pusher), so user code never reads files to learn its columns.
Nothing TensorFlow is imported at module level.
"""

from __future__ import annotations

import json
from typing import Any

from anomalyops.spec import FeatureSpec, parse_spec

SPEC_KEY = "feature_spec"
"""Key of the spec (as a JSON-ready dict) in ``custom_config``."""


def spec_to_config(spec: FeatureSpec) -> dict[str, Any]:
    """The spec as a plain dict for ``custom_config`` / exec properties."""
    return spec.model_dump(mode="json")


def spec_to_json(spec: FeatureSpec) -> str:
    return json.dumps(spec_to_config(spec), sort_keys=True)


def spec_from_config(custom_config: dict[str, Any] | str | None) -> FeatureSpec:
    """Recover the spec from ``custom_config`` (a dict, or its JSON) or raise naming the gap."""
    if isinstance(custom_config, str):
        custom_config = json.loads(custom_config)
    if not custom_config or SPEC_KEY not in custom_config:
        raise ValueError(
            f"custom_config has no {SPEC_KEY!r}: the pipeline must pass the feature spec "
            "(anomalyops_tfx.pipeline.create_pipeline does)"
        )
    return parse_spec(custom_config[SPEC_KEY], source="custom_config.feature_spec")


def model_inputs(spec: FeatureSpec) -> list[str]:
    """Columns the model reads: the features and their temporal derivations (materialised in
    the lake at ingest), never the label, timestamp or entity."""
    return list(spec.model_columns)


def raw_parse_spec(spec: FeatureSpec, *, with_label: bool = True) -> dict[str, Any]:
    """``tf.io.parse_example`` spec for the lake's tf.Examples.

    Features are parsed as ``VarLenFeature`` so a missing value (an empty feature, which is how
    the lake ExampleGen writes nulls) stays missing instead of failing the parse.
    """
    import tensorflow as tf

    out: dict[str, Any] = {name: tf.io.VarLenFeature(tf.float32) for name in spec.model_columns}
    if with_label and spec.label_column:
        out[spec.label_column] = tf.io.VarLenFeature(tf.int64)
    return out
