"""EvaluationGate: the blessing component for the unsupervised autoencoder."""

from __future__ import annotations

import json

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from anomalyops_tfx.components.evaluation_gate import executor


class EvaluationGateSpec(ComponentSpec):
    PARAMETERS = {
        "custom_config": ExecutionParameter(type=str),
        "threshold_quantile": ExecutionParameter(type=float),
        "no_regression_margin": ExecutionParameter(type=float),
        "min_eval_rows": ExecutionParameter(type=int),
        "eval_split": ExecutionParameter(type=str),
        "stale_false_alarm_rate": ExecutionParameter(type=float, optional=True),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "model": ChannelParameter(type=standard_artifacts.Model),
        "baseline_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
        # The baseline's blessing carries the threshold it is served with.
        "baseline_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing, optional=True),
    }
    OUTPUTS = {"blessing": ChannelParameter(type=standard_artifacts.ModelBlessing)}


class EvaluationGate(base_component.BaseComponent):
    """Calibrates the threshold on held-out rows, compares with the blessed model, blesses."""

    SPEC_CLASS = EvaluationGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        examples: channel.BaseChannel,
        model: channel.BaseChannel,
        *,
        feature_spec: dict,
        threshold_quantile: float,
        no_regression_margin: float,
        min_eval_rows: int = 1,
        baseline_model: channel.BaseChannel | None = None,
        baseline_blessing: channel.BaseChannel | None = None,
        stale_false_alarm_rate: float | None = None,
        eval_split: str = "eval",
    ):
        super().__init__(
            spec=EvaluationGateSpec(
                examples=examples,
                model=model,
                baseline_model=baseline_model,
                baseline_blessing=baseline_blessing,
                stale_false_alarm_rate=stale_false_alarm_rate,
                custom_config=json.dumps({"feature_spec": feature_spec}, sort_keys=True),
                threshold_quantile=threshold_quantile,
                no_regression_margin=no_regression_margin,
                min_eval_rows=min_eval_rows,
                eval_split=eval_split,
                blessing=channel.Channel(type=standard_artifacts.ModelBlessing),
            )
        )
