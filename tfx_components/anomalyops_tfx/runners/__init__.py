"""Entry points that run create_pipeline() outside Airflow."""
