"""The preload is inert unless asked for, and only where tasks fork: ``airflow scheduler``
(LocalExecutor) and ``airflow celery worker`` (its prefork pool)."""

from __future__ import annotations

import sys

import pytest

from anomalyops_airflow import preload


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/venv/bin/airflow", "scheduler"], True),
        (["airflow", "scheduler", "--num-runs", "1"], True),
        (["/venv/bin/airflow", "webserver"], False),
        (["/venv/bin/airflow", "tasks", "run", "d", "t", "r"], False),
        (["pytest", "scheduler"], False),
        (["airflow"], False),
    ],
)
def test_is_scheduler(argv, expected):
    assert preload.is_scheduler(argv) is expected


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/venv/bin/airflow", "celery", "worker"], True),
        (["airflow", "celery", "worker", "--concurrency", "1", "--celery-hostname", "w1"], True),
        (["airflow", "celery", "flower"], False),
        (["airflow", "worker"], False),
        (["celery", "worker"], False),
    ],
)
def test_is_celery_worker(argv, expected):
    assert preload.is_celery_worker(argv) is expected
    assert preload.forks_tasks(argv) is expected


def test_preload_only_when_enabled_and_in_the_scheduler(settings_env, monkeypatch):
    monkeypatch.setattr(preload, "PRELOAD_MODULES", ("colorsys",))
    sys.modules.pop("colorsys", None)
    scheduler = ["/venv/bin/airflow", "scheduler"]

    assert preload.preload_if_wanted(scheduler) is None
    assert "colorsys" not in sys.modules

    monkeypatch.setenv("ANOMALYOPS_ORCHESTRATION__PRELOAD_TENSORFLOW", "true")
    settings_env.cache_clear()
    assert preload.preload_if_wanted(["/venv/bin/airflow", "webserver"]) is None
    assert "colorsys" not in sys.modules
    timings = preload.preload_if_wanted(scheduler)
    assert set(timings) == {"colorsys"}
    assert "colorsys" in sys.modules


def test_preload_list_is_libraries_not_pipeline_code():
    assert not any(m.startswith("anomalyops_tfx") for m in preload.PRELOAD_MODULES)
