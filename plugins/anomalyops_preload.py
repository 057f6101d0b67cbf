"""Airflow plugin: preload TensorFlow/TFX in the scheduler process (see
``anomalyops_airflow.preload``). Inert unless ``ANOMALYOPS_ORCHESTRATION__PRELOAD_TENSORFLOW``
is true, the process is ``airflow scheduler`` and ``AIRFLOW__CORE__LAZY_LOAD_PLUGINS=False``."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from anomalyops_airflow.preload import preload_if_wanted

preload_if_wanted()


class AnomalyopsPreloadPlugin(AirflowPlugin):
    name = "anomalyops_preload"
