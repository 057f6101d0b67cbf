"""FastAPI batch-scoring service. Imports neither Airflow nor TFX."""
