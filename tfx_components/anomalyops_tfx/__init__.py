"""The TFX training pipeline: components, model code and create_pipeline(). Needs no Airflow."""
