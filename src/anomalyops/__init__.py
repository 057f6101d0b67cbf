"""anomalyops: shared logic for the retraining system (settings, feature spec, lake, sources).

Imported by DAGs, TFX components and the scoring API alike, so nothing here may import
Airflow, TFX or TensorFlow at module level.
"""

__version__ = "0.1.0"
