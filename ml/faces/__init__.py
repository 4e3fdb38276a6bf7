"""The faces a person or a scheduler meets: the ``churnwatch`` CLI, the Airflow tasks the DAGs in
``dags/`` compose, the local services behind ``make up``, the run orchestrator and the summary.
Thin: they parse parameters and call the stages."""
