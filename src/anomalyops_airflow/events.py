"""Telling Airflow about a day promoted outside a DAG run (``anomalyops readmit``).

Inside the ingest DAG the ``promote`` task's Dataset outlet does this; a re-admission from the
command line records the same Dataset event directly in Airflow's metadata database, so the
training DAG (scheduled on ``VALIDATED``) runs as if the day had passed the gate on time.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def announce_validated(ds: str, path: str) -> str:
    """Record a ``VALIDATED`` Dataset event; return a sentence saying what happened."""
    try:
        from airflow.datasets.manager import dataset_manager
        from airflow.utils.session import create_session

        from anomalyops_airflow.datasets import VALIDATED

        with create_session() as session:
            event = dataset_manager.register_dataset_change(
                dataset=VALIDATED, extra={"ds": ds, "path": path, "via": "readmit"}, session=session
            )
    except Exception as exc:  # no Airflow DB reachable from here: say what to do instead
        log.debug("dataset event failed", exc_info=True)
        return (
            f"could not record a Dataset event in Airflow ({type(exc).__name__}: {exc}); "
            f"the next training run includes {ds}, or trigger the training DAG now"
        )
    if event is None:
        return (
            "Airflow does not know the validated-data Dataset yet (no DAG parsed that uses it); "
            f"the next training run includes {ds}"
        )
    return f"recorded a Dataset event for {ds}: the training DAG will run"
