"""AtomicPusher: pushes only a model the evaluation gate blessed, atomically."""

from __future__ import annotations

import json

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from anomalyops_tfx.components.pusher import executor


class AtomicPusherSpec(ComponentSpec):
    PARAMETERS = {
        "serving_model_dir": ExecutionParameter(type=str),
        "custom_config": ExecutionParameter(type=str),
    }
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
    }
    OUTPUTS = {"pushed_model": ChannelParameter(type=standard_artifacts.PushedModel)}


class AtomicPusher(base_component.BaseComponent):
    """Writes a private ``<serving_model_dir>/.tmp-<version>-<random>/`` then renames it to
    ``<version>/``; then deletes versions beyond the retention policy (``logic.apply_retention``)."""

    SPEC_CLASS = AtomicPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: channel.BaseChannel,
        model_blessing: channel.BaseChannel,
        *,
        serving_model_dir: str,
        feature_spec: dict,
    ):
        super().__init__(
            spec=AtomicPusherSpec(
                model=model,
                model_blessing=model_blessing,
                serving_model_dir=str(serving_model_dir),
                custom_config=json.dumps({"feature_spec": feature_spec}, sort_keys=True),
                pushed_model=channel.Channel(type=standard_artifacts.PushedModel),
            )
        )
