"""SchemaCheck: a component that fails when ExampleValidator reports anomalies."""

from __future__ import annotations

import json

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from anomalyops_tfx.components.artifacts import SchemaCheckResult
from anomalyops_tfx.components.schema_check import executor


class SchemaCheckSpec(ComponentSpec):
    PARAMETERS = {"allowed_anomaly_types": ExecutionParameter(type=str)}
    INPUTS = {"anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies)}
    # A small report artifact, so downstream nodes can depend on the gate having passed.
    OUTPUTS = {"result": ChannelParameter(type=SchemaCheckResult)}


class SchemaCheck(base_component.BaseComponent):
    SPEC_CLASS = SchemaCheckSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, anomalies: channel.BaseChannel, allowed_anomaly_types: list[str] = ()):
        super().__init__(
            spec=SchemaCheckSpec(
                anomalies=anomalies,
                allowed_anomaly_types=json.dumps(sorted(allowed_anomaly_types)),
                result=channel.Channel(type=SchemaCheckResult),
            )
        )
