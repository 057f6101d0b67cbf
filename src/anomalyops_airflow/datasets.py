"""The Asset (a Dataset in Airflow 2) that connects the DAGs: ingestion produces it, training consumes."""

from anomalyops_airflow.compat import Asset

# The ``x-`` prefix marks a private URI scheme (AIP-60). Airflow then skips its provider-based
# URI normalisation, which would otherwise load every provider's dataset handlers (2-4 s here)
# while parsing each DAG file that uses a Dataset.
VALIDATED = Asset("x-anomalyops://lake/validated")
"""Updated whenever a day is written to the lake's ``validated`` zone."""
