"""ExampleGen records the gate's drift score on each span; the window restarts at a sudden shift.

Real ExampleGen executions (LocalDagRunner, one per day) write the Examples artifacts to ML
Metadata; ``RegimeWindowStrategy`` then resolves the window from those artifacts.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from anomalyops.lake import Lake, Zone
from anomalyops.settings import Settings
from anomalyops.sources.simulator import SimulatorConfig, simulate_day
from anomalyops.spec import load_spec
from anomalyops.validation import report
from tests.helpers.lake_data import days

pytestmark = pytest.mark.timeout(900)

DAYS = days(dt.date(2026, 11, 1), 4)
SCORES = {DAYS[1]: 0.2, DAYS[2]: 0.93, DAYS[3]: 0.1}  # DAYS[0]: first day, no report


def test_window_restarts_at_the_day_the_gate_scored_as_a_sudden_shift(tmp_path):
    from ml_metadata import metadata_store
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner
    from tfx.types import artifact_utils

    from anomalyops_airflow.launcher import no_ephemeral_sdist
    from anomalyops_tfx.components.regime_window.logic import DRIFT_SCORE_PROPERTY
    from anomalyops_tfx.components.regime_window.strategy import RegimeWindowStrategy
    from anomalyops_tfx.pipeline import (
        EXAMPLE_GEN_ID,
        create_ingest_pipeline,
        metadata_connection_config,
        span_of,
    )

    settings = Settings(lake_root=str(tmp_path / "lake"), pipeline_root=tmp_path / "tfx")
    spec = load_spec(settings.feature_spec_path)
    lake = Lake(settings.lake_root)
    for day in DAYS:
        lake.write_table(
            Zone.VALIDATED, day, simulate_day(spec, day, SimulatorConfig(rows_per_day=200))
        )
        if day in SCORES:
            drift = {"scores": [{"feature": "flow_rate", "value": SCORES[day]}]}
            report.write_report(lake, day, {report.DRIFT_JSON: json.dumps(drift).encode()}, meta={})
    settings.pipeline_root.mkdir(parents=True)
    with no_ephemeral_sdist():
        for day in DAYS:
            LocalDagRunner().run(create_ingest_pipeline(settings, spec, day))

    store = metadata_store.MetadataStore(metadata_connection_config(settings))
    context = store.get_context_by_type_and_name(
        "node", f"{settings.pipeline_name}.{EXAMPLE_GEN_ID}"
    )
    examples_type = store.get_artifact_type("Examples")
    artifacts = [
        artifact_utils.deserialize_artifact(examples_type, a)
        for a in store.get_artifacts_by_context(context.id)
    ]
    recorded = {
        a.get_int_custom_property("span"): (
            a.get_float_custom_property(DRIFT_SCORE_PROPERTY)
            if a.has_custom_property(DRIFT_SCORE_PROPERTY)
            else None
        )
        for a in artifacts
    }
    assert recorded == {
        span_of(DAYS[0]): None,
        **{span_of(d): pytest.approx(s) for d, s in SCORES.items()},
    }

    window = RegimeWindowStrategy(num_spans=14, restart_score=0.75).resolve_artifacts(
        store, {"examples": artifacts}
    )
    assert [a.get_int_custom_property("span") for a in window["examples"]] == [
        span_of(DAYS[3]),
        span_of(DAYS[2]),
    ]
    plain = RegimeWindowStrategy(num_spans=14).resolve_artifacts(store, {"examples": artifacts})
    assert len(plain["examples"]) == len(DAYS)
