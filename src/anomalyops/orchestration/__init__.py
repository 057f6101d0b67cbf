"""Run the TFX pipeline on Airflow from its compiled IR: one task per node, TFX's portable launcher.

Importing this package (or ``ir``/``airflow_dag``) loads neither TensorFlow, TFX, Beam nor ML
Metadata; only compiling and launching do, inside the functions. See docs/orchestration.md.
"""
