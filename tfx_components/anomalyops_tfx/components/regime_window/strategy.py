"""``RegimeWindowStrategy``: a TFX resolver strategy around :mod:`.logic`."""

from __future__ import annotations

from absl import logging
from tfx import types
from tfx.dsl.components.common import resolver

from anomalyops_tfx.components.regime_window import logic

_SPAN = "span"


def _span(artifact: types.Artifact) -> int:
    # ExampleGen has stored span as a string in some TFX versions.
    text = artifact.get_string_custom_property(_SPAN)
    return int(text) if text else artifact.get_int_custom_property(_SPAN)


def _drift_score(artifact: types.Artifact) -> float | None:
    if not artifact.has_custom_property(logic.DRIFT_SCORE_PROPERTY):
        return None
    return artifact.get_float_custom_property(logic.DRIFT_SCORE_PROPERTY)


class RegimeWindowStrategy(resolver.ResolverStrategy):
    """The Examples of the last ``num_spans`` spans, from the newest regime start on.

    Used like ``SpanRangeStrategy``::

        Resolver(strategy_class=RegimeWindowStrategy,
                 config={"num_spans": 14, "restart_score": 0.75}, examples=Channel(...))
    """

    def __init__(
        self,
        num_spans: int,
        restart_score: float | None = None,
        drifting_spans: int | None = None,
        persist: int = 2,
    ):
        self._num_spans = int(num_spans)
        self._restart_score = None if restart_score is None else float(restart_score)
        self._drifting_spans = None if drifting_spans is None else int(drifting_spans)
        self._persist = int(persist)

    def resolve_artifacts(self, store, input_dict):
        result = {}
        for key, artifacts in input_dict.items():
            if not artifacts:
                return None
            missing = [a.uri for a in artifacts if not a.has_custom_property(_SPAN)]
            if missing:
                raise RuntimeError(f"Examples without a span property: {missing}")
            window = logic.select(
                [logic.SpanInfo(_span(a), _drift_score(a)) for a in artifacts],
                self._num_spans,
                self._restart_score,
                drifting_spans=self._drifting_spans,
                persist=self._persist,
            )
            if window.drifting:
                logging.info(
                    "Drift persists (the newest %d spans drifted significantly): training on "
                    "the last %d spans only: %s",
                    self._persist,
                    self._drifting_spans,
                    list(window.spans),
                )
            if window.restarted_at is not None:
                logging.info(
                    "Training window restarts at span %d (drift score >= %s): spans %s",
                    window.restarted_at,
                    self._restart_score,
                    list(window.spans),
                )
            keep = set(window.spans)
            result[key] = sorted(
                (a for a in artifacts if _span(a) in keep), key=_span, reverse=True
            )
        return result
