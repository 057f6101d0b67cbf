"""Artifact types of the custom components (small JSON reports, so downstream can depend)."""

from __future__ import annotations

from tfx.types.artifact import Artifact


class DataGateResult(Artifact):
    """The anomalies gate passed; its directory holds ``anomalies_gate.json``."""

    TYPE_NAME = "AnomalyOpsDataGateResult"


class ServingNotification(Artifact):
    """What the serving notifier did (``notified``, ``served_version`` custom properties)."""

    TYPE_NAME = "AnomalyOpsServingNotification"
