"""Import TensorFlow/TFX once in the process tasks are forked from, so tasks skip the import.

Under LocalExecutor (Airflow 2), each task process is forked from the scheduler; under the
CeleryExecutor, from a pool process of ``airflow celery worker``, itself forked from the
worker's main process. A module that process already imported costs a task nothing. The
``anomalyops_preload`` plugin calls ``preload_if_wanted`` when Airflow loads plugins eagerly
(``AIRFLOW__CORE__LAZY_LOAD_PLUGINS=False``), which happens on ``import airflow`` - before the
executor (or Celery's prefork pool) forks.

Only imports: running a TensorFlow op or opening a gRPC channel before ``fork()`` would leave
the children with a runtime whose threads did not survive the fork.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from collections.abc import Sequence

log = logging.getLogger(__name__)

PRELOAD_MODULES = (
    "tensorflow",
    "tf_keras",
    "tensorflow_transform",
    "tensorflow_data_validation",
    "apache_beam",
    "ml_metadata",
    "tfx.components",
    "tfx.orchestration.portable.launcher",
    "tfx.orchestration.local.runner_utils",
    "anomalyops_airflow.launcher",
)
"""Libraries only: the project's pipeline code (``anomalyops_tfx``) is imported by each task, so
a change to it takes effect without restarting the scheduler; a TFX upgrade needs a restart."""


def is_scheduler(argv: Sequence[str]) -> bool:
    return (
        len(argv) > 1 and os.path.basename(argv[0]).startswith("airflow") and argv[1] == "scheduler"
    )


def is_celery_worker(argv: Sequence[str]) -> bool:
    return (
        len(argv) > 2
        and os.path.basename(argv[0]).startswith("airflow")
        and list(argv[1:3]) == ["celery", "worker"]
    )


def forks_tasks(argv: Sequence[str]) -> bool:
    """``airflow scheduler`` (LocalExecutor) or ``airflow celery worker`` (prefork pool)."""
    return is_scheduler(argv) or is_celery_worker(argv)


def preload(modules: Sequence[str] = PRELOAD_MODULES) -> dict[str, float]:
    """Import ``modules``; returns the seconds each took."""
    timings = {}
    for name in modules:
        start = time.perf_counter()
        importlib.import_module(name)
        timings[name] = round(time.perf_counter() - start, 3)
    return timings


def preload_if_wanted(argv: Sequence[str] | None = None) -> dict[str, float] | None:
    """Preload in the scheduler or a Celery worker when
    ``ANOMALYOPS_ORCHESTRATION__PRELOAD_TENSORFLOW`` is true."""
    from anomalyops.settings import get_settings

    argv = sys.argv if argv is None else argv
    if not (get_settings().orchestration.preload_tensorflow and forks_tasks(argv)):
        return None
    timings = preload(PRELOAD_MODULES)
    command = "celery worker" if is_celery_worker(argv) else "scheduler"
    log.info("anomalyops: preloaded TensorFlow/TFX in `airflow %s` (%s)", command, timings)
    return timings
