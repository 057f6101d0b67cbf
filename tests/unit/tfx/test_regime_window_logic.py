"""The training window: last N spans, restarted at the newest regime start."""

from __future__ import annotations

import pytest

from anomalyops_tfx.components.regime_window import logic
from anomalyops_tfx.components.regime_window.logic import SpanInfo


def infos(*pairs):
    return [SpanInfo(span, score) for span, score in pairs]


def test_rolling_window_keeps_the_last_n_spans_newest_first():
    window = logic.select(infos((1, 0.1), (2, 0.2), (3, None), (4, 0.1)), 3, 0.75)
    assert window.spans == (4, 3, 2)
    assert window.restarted_at is None


def test_window_restarts_at_the_newest_regime_start():
    spans = infos((1, 0.1), (2, 0.9), (3, 0.2), (4, 0.8), (5, 0.3))
    window = logic.select(spans, 14, 0.75)
    assert window.spans == (5, 4)
    assert window.restarted_at == 4


def test_regime_starts_outside_the_rolling_range_do_not_matter():
    window = logic.select(infos((1, 0.99), (2, 0.1), (3, 0.1)), 2, 0.75)
    assert window.spans == (3, 2)
    assert window.restarted_at is None


def test_a_restart_on_the_newest_day_leaves_only_that_day():
    window = logic.select(infos((1, 0.1), (2, 0.76)), 14, 0.75)
    assert window.spans == (2,)


def test_no_threshold_never_restarts_and_repeated_spans_count_once():
    window = logic.select(infos((1, 0.9), (2, 0.9), (2, 0.1)), 14, None)
    assert window.spans == (2, 1)
    assert window.restarted_at is None
    # Any version of a span marks it as a regime start.
    assert logic.select(infos((1, 0.1), (2, 0.1), (2, 0.9)), 14, 0.75).spans == (2,)


@pytest.mark.parametrize("num_spans", [0, -3])
def test_bad_window_sizes_are_refused(num_spans):
    with pytest.raises(ValueError, match="num_spans"):
        logic.select(infos((1, None)), num_spans, None)


def test_empty_input_is_refused():
    with pytest.raises(ValueError, match="no spans"):
        logic.select([], 3, None)


def test_max_drift_score_of_a_gate_report():
    report = {
        "scores": [
            {"feature": "a", "value": 0.2},
            {"feature": "b", "value": 0.81},
            {"feature": "c", "value": None},
        ]
    }
    assert logic.max_drift_score(report) == pytest.approx(0.81)
    assert logic.max_drift_score({"scores": [], "note": "first day"}) is None


def _examples(span: int, score: float | None):
    from tfx.types import standard_artifacts

    artifact = standard_artifacts.Examples()
    artifact.uri = f"/pipeline/ExampleGen/examples/{span}"
    artifact.set_int_custom_property("span", span)
    if score is not None:
        artifact.set_float_custom_property(logic.DRIFT_SCORE_PROPERTY, score)
    return artifact


def test_strategy_resolves_real_examples_artifacts():
    from anomalyops_tfx.components.regime_window.strategy import RegimeWindowStrategy

    artifacts = [_examples(s, score) for s, score in ((10, None), (11, 0.2), (12, 0.9), (13, 0.1))]
    resolved = RegimeWindowStrategy(num_spans=14, restart_score=0.75).resolve_artifacts(
        None, {"examples": artifacts}
    )
    assert [a.get_int_custom_property("span") for a in resolved["examples"]] == [13, 12]
    no_restart = RegimeWindowStrategy(num_spans=3).resolve_artifacts(None, {"examples": artifacts})
    assert [a.get_int_custom_property("span") for a in no_restart["examples"]] == [13, 12, 11]
    assert RegimeWindowStrategy(num_spans=3).resolve_artifacts(None, {"examples": []}) is None


def test_strategy_refuses_examples_without_a_span():
    from tfx.types import standard_artifacts

    from anomalyops_tfx.components.regime_window.strategy import RegimeWindowStrategy

    artifact = standard_artifacts.Examples()
    artifact.uri = "/pipeline/ExampleGen/examples/7"
    with pytest.raises(RuntimeError, match="without a span"):
        RegimeWindowStrategy(num_spans=3).resolve_artifacts(None, {"examples": [artifact]})


def test_a_calibrated_report_gives_its_restart_score_not_the_largest_statistic():
    # A large but insignificant marginal shift (day-to-day variation) must not cut the window.
    report = {
        "restart_score": 0.0,
        "scores": [{"feature": "flow", "comparator": "ks_2samp", "value": 0.6, "drifted": False}],
    }
    assert logic.max_drift_score(report) == 0.0
    assert logic.max_drift_score({**report, "restart_score": 0.93}) == pytest.approx(0.93)
    assert logic.max_drift_score({"restart_score": None, "scores": []}) is None


def test_persistent_drift_shrinks_the_window_to_the_drifting_size():
    spans = infos(*((d, 0.0) for d in range(1, 9)), (9, 0.2), (10, 0.3))
    window = logic.select(spans, 14, 0.5, drifting_spans=3, persist=2)
    assert window.spans == (10, 9, 8)
    assert window.drifting and window.restarted_at is None


def test_one_drifted_day_or_a_quiet_newest_day_keeps_the_full_window():
    one = infos(*((d, 0.0) for d in range(1, 10)), (10, 0.3))
    assert logic.select(one, 14, 0.5, drifting_spans=3).spans == tuple(range(10, 0, -1))
    quiet = infos(*((d, 0.0) for d in range(1, 8)), (8, 0.2), (9, 0.2), (10, 0.0))
    window = logic.select(quiet, 14, 0.5, drifting_spans=3)
    assert len(window.spans) == 10 and not window.drifting


def test_a_restart_inside_the_drifting_window_still_cuts_it():
    spans = infos(*((d, 0.0) for d in range(1, 8)), (8, 0.2), (9, 0.7), (10, 0.2))
    window = logic.select(spans, 14, 0.5, drifting_spans=3)
    assert window.spans == (10, 9) and window.restarted_at == 9 and not window.drifting


def test_unscored_days_never_count_as_drifted():
    spans = infos((1, None), (2, None), (3, None), (4, None))
    assert not logic.select(spans, 14, 0.5, drifting_spans=2).drifting


@pytest.mark.parametrize(("drifting", "persist"), [(0, 2), (3, 0)])
def test_bad_drifting_window_settings_are_refused(drifting, persist):
    with pytest.raises(ValueError, match=r"drifting_spans|persist"):
        logic.select(infos((1, None)), 3, None, drifting_spans=drifting, persist=persist)
