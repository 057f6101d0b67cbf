"""The DAG ids, named once: the DAG files, the demo and readmit's hint all use these.

A module with no imports, so the demo can name the DAGs without importing the layer's
TFX-facing modules.
"""

INGEST_DAG_ID = "anomalyops_ingest"
TRAIN_DAG_ID = "anomalyops_train"
MONITOR_DAG_ID = "anomalyops_monitor"
