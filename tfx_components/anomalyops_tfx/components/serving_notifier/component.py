"""ServingNotifier: tells the scoring service a version was pushed and waits until it serves it."""

from __future__ import annotations

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from anomalyops_tfx.components.artifacts import ServingNotification
from anomalyops_tfx.components.serving_notifier import executor


class ServingNotifierSpec(ComponentSpec):
    PARAMETERS = {
        "api_url": ExecutionParameter(type=str),
        "timeout_s": ExecutionParameter(type=float),
        "poll_interval_s": ExecutionParameter(type=float),
    }
    INPUTS = {"pushed_model": ChannelParameter(type=standard_artifacts.PushedModel)}
    OUTPUTS = {"result": ChannelParameter(type=ServingNotification)}


class ServingNotifier(base_component.BaseComponent):
    SPEC_CLASS = ServingNotifierSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        pushed_model: channel.BaseChannel,
        *,
        api_url: str | None,
        timeout_s: float,
        poll_interval_s: float = 2.0,
    ):
        super().__init__(
            spec=ServingNotifierSpec(
                pushed_model=pushed_model,
                api_url=api_url or "",
                timeout_s=float(timeout_s),
                poll_interval_s=float(poll_interval_s),
                result=channel.Channel(type=ServingNotification),
            )
        )
