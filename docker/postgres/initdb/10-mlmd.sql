-- ML Metadata gets its own database next to Airflow's (ANOMALYOPS_TRAINING__METADATA_DB_URL).
-- The postgres image runs this once, when it initialises an empty data volume.
CREATE DATABASE mlmd;
