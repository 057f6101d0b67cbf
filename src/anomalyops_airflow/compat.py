"""What Airflow 2.10/2.11 and 3.x differ in only by where it is imported from.

The DAG files and this package import these names from here, so one code path runs on both:
Airflow 3's task SDK (``airflow.sdk``) and its standard provider when Airflow is 3.x, the 2.x
locations otherwise. Everything here is light: parsing a DAG file imports it anyway.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from airflow import __version__ as AIRFLOW_VERSION

# Triggers run in the triggerer, which is core Airflow in both lines: the same place.
from airflow.triggers.base import BaseTrigger, TriggerEvent

from anomalyops_airflow.env import airflow_major

AIRFLOW_3 = airflow_major() >= 3

if AIRFLOW_3:
    from airflow.providers.standard.operators.python import (
        BranchPythonOperator,
        PythonOperator,
    )
    from airflow.sdk import (
        DAG,
        Asset,
        BaseHook,
        BaseOperator,
        BaseSensorOperator,
        Context,
        CronDataIntervalTimetable,
        Param,
        TaskGroup,
        TriggerRule,
        get_current_context,
        task,
    )
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
    from airflow.sdk.module_loading import import_string
    from airflow.sdk.observability.stats import Stats
else:
    from airflow.datasets import Dataset as Asset
    from airflow.decorators import task
    from airflow.exceptions import AirflowFailException, AirflowSkipException
    from airflow.hooks.base import BaseHook
    from airflow.models.baseoperator import BaseOperator
    from airflow.models.dag import DAG
    from airflow.models.param import Param
    from airflow.operators.python import (
        BranchPythonOperator,
        PythonOperator,
        get_current_context,
    )
    from airflow.sensors.base import BaseSensorOperator
    from airflow.stats import Stats
    from airflow.timetables.interval import CronDataIntervalTimetable
    from airflow.utils.context import Context
    from airflow.utils.module_loading import import_string
    from airflow.utils.task_group import TaskGroup
    from airflow.utils.trigger_rule import TriggerRule

__all__ = [
    "AIRFLOW_3",
    "AIRFLOW_VERSION",
    "DAG",
    "AirflowFailException",
    "AirflowSkipException",
    "Asset",
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "BaseTrigger",
    "BranchPythonOperator",
    "Context",
    "CronDataIntervalTimetable",
    "Param",
    "PythonOperator",
    "Stats",
    "TaskGroup",
    "TriggerEvent",
    "TriggerRule",
    "dag_bag",
    "dag_test",
    "daily",
    "get_current_context",
    "import_string",
    "stats_logger",
    "task",
]


def daily() -> CronDataIntervalTimetable:
    """``@daily`` with the data-interval semantics of Airflow 2 on both lines.

    Airflow 3 turns a cron string into a ``CronTriggerTimetable`` (``[scheduler]
    create_cron_data_intervals`` defaults to False): a run's logical date, and so ``{{ ds }}``,
    would be the day it starts, not the finished day before it that the tasks process.
    """
    return CronDataIntervalTimetable("@daily", timezone="UTC")


def dag_bag(dag_folder: str | os.PathLike[str]) -> Any:
    """A ``DagBag`` of ``dag_folder`` (a folder or one DAG file), without Airflow's examples.

    Imported when called: the class moved in 3.x and DAG files never need it.
    """
    if AIRFLOW_3:
        from airflow.dag_processing.dagbag import DagBag

        # Airflow 3 loads its examples as a bundle of their own, never into this bag.
        return DagBag(dag_folder=str(dag_folder))
    from airflow.models.dagbag import DagBag

    return DagBag(dag_folder=str(dag_folder), include_examples=False)


def dag_test(dag: Any, logical_date: dt.datetime, **kwargs: Any) -> Any:
    """``dag.test()`` of one run at ``logical_date`` (``execution_date`` before 3.x); the DagRun."""
    key = "logical_date" if AIRFLOW_3 else "execution_date"
    return dag.test(**{key: logical_date}, **kwargs)


def stats_logger() -> Any:
    """The metrics logger ``Stats`` sends to now (OpenTelemetry, StatsD or a no-op one).

    Airflow 2 keeps it on ``Stats.instance``; Airflow 3's ``Stats`` is a facade over a
    module-level backend built on first use.
    """
    if AIRFLOW_3:
        from airflow.sdk._shared.observability.metrics import stats

        return stats._get_backend()
    return Stats.instance
