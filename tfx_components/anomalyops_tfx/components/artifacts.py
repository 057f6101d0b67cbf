"""Artifact types of the custom components (small JSON reports, so downstream can depend)."""

from __future__ import annotations

from tfx.types.artifact import Artifact


class SchemaCheckResult(Artifact):
    """The schema check passed; its directory holds ``schema_check.json``."""

    # The type's name from before the rename: ML Metadata stores that already hold results of
    # this type keep one type, and the latest-artifact resolvers keep finding them.
    TYPE_NAME = "AnomalyOpsDataGateResult"


class ServingNotification(Artifact):
    """What the serving notifier did (``notified``, ``served_version`` custom properties)."""

    TYPE_NAME = "AnomalyOpsServingNotification"
