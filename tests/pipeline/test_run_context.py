"""A whole `churnwatch run` carries one run context: every task of the DAG run saw the same one."""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import duckdb

from helpers.run import END_DATE, HORIZON, QUICK_TRAINING


def _airflow_db(warehouse: Path) -> Path:
    """The metadata DB of the run's embedded Airflow (under the warehouse unless AIRFLOW_HOME was set)."""
    for home in (warehouse / "airflow", Path(os.environ.get("AIRFLOW_HOME", warehouse / "airflow"))):
        if (home / "airflow.db").exists():
            return home / "airflow.db"
    raise AssertionError(f"no Airflow metadata DB for {warehouse}")


def _return_values(warehouse: Path) -> dict[str, dict]:
    """task id → return value of the churn_pipeline run that built this warehouse."""
    con = sqlite3.connect(_airflow_db(warehouse))
    rows = con.execute("select run_id, task_id, value from xcom where dag_id = 'churn_pipeline' "
                       "and key = 'return_value'").fetchall()
    con.close()
    runs: dict[str, dict[str, dict]] = {}
    for run_id, task_id, value in rows:
        value = json.loads(value) if isinstance(value, (str, bytes)) else value
        value = json.loads(value) if isinstance(value, str) else value
        runs.setdefault(run_id, {})[task_id] = value
    ours = [values for values in runs.values()
            if any((v.get("context") or {}).get("warehouse") == str(warehouse.resolve()) for v in values.values())]
    assert len(ours) == 1, f"{len(ours)} churn_pipeline runs built {warehouse}"
    return ours[0]


def test_every_task_of_the_run_saw_one_context(pipeline_s):
    values = _return_values(pipeline_s)
    contexts = {task_id: value["context"] for task_id, value in values.items() if "context" in value}
    assert {"ingest", "validate_raw", "validate_features", "train_if_needed", "score", "validate_scores",
            "decide_retention"} <= set(contexts), sorted(values)
    first = contexts["ingest"]
    assert first["as_of"] == END_DATE.isoformat() and first["horizon_days"] == HORIZON
    # a setting the form does not carry reached the run through the environment, once, at its start
    assert first["n_training_cutoffs"] == int(QUICK_TRAINING["CHURNWATCH_N_TRAINING_CUTOFFS"])
    for task_id, context in contexts.items():
        assert context == first, task_id
        assert values[task_id]["dbt_vars"]["as_of_date"] == END_DATE.isoformat(), task_id
    assert values["publish"]["as_of"] == END_DATE.isoformat()


def test_the_one_shot_run_builds_both_seeds_as_the_cosmos_dags_do(pipeline_s):
    """One dbt selection of the marts for both paths (ml.core.dbt.MARTS_SELECT): the reason catalog
    seed is built by the one-shot job too, not only by churn_scoring's Cosmos group."""
    con = duckdb.connect(str(pipeline_s / "churnwatch.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'marts'").fetchall()}
    finally:
        con.close()
    assert {"offer_catalog", "reason_catalog"} <= tables
