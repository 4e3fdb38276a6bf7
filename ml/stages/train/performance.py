"""``ml.model_performance``: one row per model version with its test metrics, published to analysts.

Kept in this one module so that how the table is written can change in one place.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from ml.core.settings import Settings
from ml.core.warehouse import connect

PERFORMANCE_KEYS = ("auc", "pr_auc", "brier", "ece", "lift_at_10pct", "lift_at_20pct", "recall_at_10pct",
                    "recall_at_20pct", "base_rate")


def record_performance(settings: Settings, version: str, run_id: str, metrics: dict, test_cutoff,
                       promoted: bool, decision: str, value_kind: str) -> None:
    """Upsert this version's test metrics into ``ml.model_performance`` (published to analysts)."""
    row = {"model_name": settings.registered_model_name, "model_version": version, "run_id": run_id,
           "as_of_date": settings.as_of, "test_cutoff": test_cutoff, "horizon_days": settings.horizon_days,
           **{k: float(metrics[f"test_{k}"]) for k in PERFORMANCE_KEYS if f"test_{k}" in metrics},
           "test_customers": int(metrics["test_rows"]), "cv_auc": float(metrics.get("cv_auc", np.nan)),
           "backtest_auc_mean": float(metrics.get("backtest_auc_mean", np.nan)),
           **{k: float(v) for k, v in metrics.items() if k.startswith("baseline_") and k.endswith("_auc")},
           **{k: float(v) for k, v in metrics.items() if k in ("value_mae", "value_total_relative_error", "value_spearman")},
           "value_model": value_kind,
           "promoted": promoted, "promotion_decision": decision,
           "trained_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)}
    frame = pd.DataFrame([row])
    with connect(settings) as con:
        con.execute("create schema if not exists ml")
        con.execute("create table if not exists ml.model_performance as select * from frame limit 0")
        existing = {r[0] for r in con.execute("select column_name from information_schema.columns "
                                              "where table_schema = 'ml' and table_name = 'model_performance'").fetchall()}
        for name in frame.columns:  # new metrics become new columns; old rows keep NULL there
            if name not in existing:
                kind = con.execute(f'select typeof("{name}") from frame').fetchall()[0][0]
                con.execute(f'alter table ml.model_performance add column "{name}" {kind}')
        con.execute("delete from ml.model_performance where model_name = ? and model_version = ?",
                    [settings.registered_model_name, version])
        con.execute("insert into ml.model_performance by name select * from frame")
