"""Schema check executor: parse each split's SchemaDiff.pb and fail on anomalies."""

from __future__ import annotations

import json
import os
from typing import Any

from absl import logging
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from anomalyops_tfx.components.schema_check import logic

ANOMALIES_FILE = "SchemaDiff.pb"


def load_anomalies(artifact: types.Artifact) -> dict[str, anomalies_pb2.Anomalies]:
    """``{split: Anomalies}`` from an ExampleValidator output artifact."""
    out = {}
    for split in artifact_utils.decode_split_names(artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([artifact], split), ANOMALIES_FILE)
        if not fileio.exists(path):
            raise FileNotFoundError(f"ExampleValidator output has no {path}")
        with fileio.open(path, "rb") as f:
            out[split] = anomalies_pb2.Anomalies.FromString(f.read())
    return out


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        allowed = json.loads(exec_properties.get("allowed_anomaly_types") or "[]")
        anomalies = load_anomalies(artifact_utils.get_single_instance(input_dict["anomalies"]))
        tolerated = logic.check(anomalies, allowed)  # raises on blocking anomalies
        for finding in tolerated:
            logging.warning("Allowed anomaly: %s", finding)
        result = artifact_utils.get_single_instance(output_dict["result"])
        report = {"splits": sorted(anomalies), "allowed": [str(f) for f in tolerated]}
        with fileio.open(os.path.join(result.uri, "schema_check.json"), "w") as f:
            f.write(json.dumps(report, indent=2))
        logging.info("Schema check passed for splits %s", sorted(anomalies))
