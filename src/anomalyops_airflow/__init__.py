"""The Airflow layer: everything that knows it runs under Airflow.

Task adapters (``tasks``), the Dataset that links the DAGs (``datasets``), alert delivery and
the failure callback (``alerting``), the validated-data event for days readmitted outside a
DAG run (``events``), the environment Airflow runs with (``env``), and TFX-on-Airflow: the
compiled IR (``ir``), the IR -> Airflow task builder (``dag_builder``), TFX's portable launcher
per task (``launcher``), span registration (``spans``) and the scheduler's TensorFlow preload
(``preload``). It sits above the core (``anomalyops``) and the pipeline (``anomalyops_tfx``);
DAG files import only this package and Airflow. Importing it loads neither TensorFlow, TFX,
Beam nor ML Metadata: compiling and launching do, inside the functions.
"""
