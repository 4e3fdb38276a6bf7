"""``ml.model_performance``: one row per model version with its test metrics, published to analysts.

Kept in this one module so that how the table is written can change in one place. Its columns
are declared here (``COLUMNS``, names, order and types), the same list dbt's
``stg_churnwatch__model_performance`` reads and ``marts.model_performance`` describes and tests
(``tests/dbt/test_published_contract.py`` holds the two together): the table has every column
from its first row on, NULL where a version has no such metric, whatever metrics a run computed.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from ml.core.settings import Settings
from ml.core.warehouse import connect

PERFORMANCE_KEYS = ("auc", "pr_auc", "brier", "ece", "lift_at_10pct", "lift_at_20pct", "recall_at_10pct",
                    "recall_at_20pct", "base_rate")
BASELINE_KEYS = ("baseline_days_since_last_order_auc", "baseline_rfm_logistic_auc", "baseline_rfm_logistic_pr_auc",
                 "baseline_bgnbd_auc", "baseline_bgnbd_pr_auc")
VALUE_KEYS = ("value_mae", "value_total_relative_error", "value_spearman")

# the table's columns, in order, with their DuckDB types
COLUMNS = (
    ("model_name", "VARCHAR"), ("model_version", "VARCHAR"), ("run_id", "VARCHAR"),
    ("as_of_date", "DATE"), ("test_cutoff", "DATE"), ("horizon_days", "BIGINT"),
    *((k, "DOUBLE") for k in PERFORMANCE_KEYS),
    ("test_customers", "BIGINT"), ("cv_auc", "DOUBLE"), ("backtest_auc_mean", "DOUBLE"),
    *((k, "DOUBLE") for k in BASELINE_KEYS),
    *((k, "DOUBLE") for k in VALUE_KEYS),
    ("value_model", "VARCHAR"), ("promoted", "BOOLEAN"), ("promotion_decision", "VARCHAR"),
    ("trained_at", "TIMESTAMP"),
)


def _ensure_table(con) -> None:
    """The table with every declared column (a table from an older release gains those it lacks)."""
    con.execute("create schema if not exists ml")
    con.execute("create table if not exists ml.model_performance ("
                + ", ".join(f'"{name}" {kind}' for name, kind in COLUMNS) + ")")
    existing = {r[0] for r in con.execute("select column_name from information_schema.columns "
                                          "where table_schema = 'ml' and table_name = 'model_performance'").fetchall()}
    for name, kind in COLUMNS:
        if name not in existing:
            con.execute(f'alter table ml.model_performance add column "{name}" {kind}')


def ensure_table(settings: Settings) -> None:
    """An empty ``ml.model_performance`` where no version was trained in this warehouse yet (the
    marts step reads it: e.g. a warehouse scored with a champion trained elsewhere)."""
    with connect(settings) as con:
        _ensure_table(con)


def record_performance(settings: Settings, version: str, run_id: str, metrics: dict, test_cutoff,
                       promoted: bool, decision: str, value_kind: str) -> None:
    """Upsert this version's test metrics into ``ml.model_performance`` (published to analysts)."""
    row = {"model_name": settings.registered_model_name, "model_version": version, "run_id": run_id,
           "as_of_date": settings.as_of, "test_cutoff": test_cutoff, "horizon_days": settings.horizon_days,
           **{k: float(metrics[f"test_{k}"]) for k in PERFORMANCE_KEYS if f"test_{k}" in metrics},
           "test_customers": int(metrics["test_rows"]), "cv_auc": float(metrics.get("cv_auc", np.nan)),
           "backtest_auc_mean": float(metrics.get("backtest_auc_mean", np.nan)),
           **{k: float(metrics[k]) for k in (*BASELINE_KEYS, *VALUE_KEYS) if k in metrics},
           "value_model": value_kind,
           "promoted": promoted, "promotion_decision": decision,
           "trained_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)}
    frame = pd.DataFrame([row])
    # every declared column, cast to its type; a metric this run did not compute is NULL
    values = ", ".join(f'"{name}"::{kind} as "{name}"' if name in row else f'null::{kind} as "{name}"'
                       for name, kind in COLUMNS)
    with connect(settings) as con:
        _ensure_table(con)
        con.execute("delete from ml.model_performance where model_name = ? and model_version = ?",
                    [settings.registered_model_name, version])
        con.execute(f"insert into ml.model_performance by name select {values} from frame")
