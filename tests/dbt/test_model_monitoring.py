"""marts.model_monitoring and model_monitoring_reliability: realized performance of closed scoring runs.

A hand-made warehouse where the truth is known: scoring.churn_scores holds five scoring runs
(two closed well before the as-of date, one whose horizon ends on it, two ending after it; scores
rounded to two decimals so ties abound; one run of 7 customers who all churned) and raw.orders
places orders on, just inside and just past the window edges. The marts, built by dbt, must equal
ml/model/metrics.py's functions on the same arrays (customers in customer_id order).
"""
from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from helpers.raw_tables import create_raw_tables, insert_rows
from ml.core.dbt import run_dbt
from ml.core.settings import Settings
from ml.model import metrics

END = dt.date(2025, 12, 31)
RUNS = [  # as_of_date, horizon_days, model_version, customers
    (dt.date(2025, 6, 30), 90, "3", 240),
    (dt.date(2025, 9, 1), 30, "3", 173),
    (dt.date(2025, 10, 2), 90, "4", 7),  # window ends on END: closed
    (dt.date(2025, 10, 3), 90, "4", 50),  # ends a day after END: open
    (dt.date(2025, 12, 2), 30, "4", 60),  # open
]
CLOSED = {(dt.date(2025, 6, 30), 90), (dt.date(2025, 9, 1), 30), (dt.date(2025, 10, 2), 90)}
KEYS = ["as_of_date", "horizon_days", "model_name", "model_version", "segment_type", "segment"]
METRICS = {
    "auc": metrics.auc, "pr_auc": metrics.pr_auc, "brier": metrics.brier,
    "ece": metrics.expected_calibration_error,
    "lift_at_10pct": lambda y, p: metrics.lift_at(y, p, 0.10),
    "lift_at_20pct": lambda y, p: metrics.lift_at(y, p, 0.20),
    "recall_at_10pct": lambda y, p: metrics.recall_at(y, p, 0.10),
    "recall_at_20pct": lambda y, p: metrics.recall_at(y, p, 0.20),
}


def _tier(p: float) -> str:
    return "high" if p >= 0.5 else "medium" if p >= 0.25 else "low"


def _fill(con: duckdb.DuckDBPyConnection) -> None:
    rng = np.random.default_rng(20)
    create_raw_tables(con)
    scores, orders = [], []
    for run, (as_of, horizon, version, n) in enumerate(RUNS):
        for i in range(n):
            customer = f"C{run}{i:04d}"
            p = float(np.round(rng.beta(2, 3), 2))
            scores.append((customer, as_of, horizon, p, _tier(p), 100.0, 100.0 * p, None, None, None,
                           f"churnwatch_churn_{horizon}d", version, f"run-{version}",
                           dt.datetime.combine(as_of, dt.time(6)) + dt.timedelta(days=1)))
            orders.append((customer, as_of))  # on the as-of date: outside the window
            if horizon == 90 and n == 7:
                continue  # all churned: one outcome only
            if rng.random() > p:  # retained: an order in the window, often on its edges
                offset = int(rng.choice([1, horizon, int(rng.integers(1, horizon + 1))]))
                orders.append((customer, as_of + dt.timedelta(days=offset)))
            elif rng.random() < 0.5:  # churned, but ordered the day after the window
                orders.append((customer, as_of + dt.timedelta(days=horizon + 1)))
    orders.append(("C99999", END))  # the data's last day
    insert_rows(con, "orders", [
        {"order_id": f"O{k:06d}", "customer_id": c, "order_ts": dt.datetime.combine(d, dt.time(12)),
         "amount": 20.0, "status": "completed"} for k, (c, d) in enumerate(orders) if d <= END])
    con.execute("create schema scoring")
    con.execute("""
        create table scoring.churn_scores (
            customer_id varchar, as_of_date date, horizon_days integer, churn_probability double,
            risk_tier varchar, predicted_value double, value_at_risk double, reason_1 varchar,
            reason_2 varchar, reason_3 varchar, model_name varchar, model_version varchar,
            run_id varchar, scored_at timestamp)""")
    con.executemany("insert into scoring.churn_scores values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", scores)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    warehouse = tmp_path_factory.mktemp("monitoring")
    con = duckdb.connect(str(warehouse / "churnwatch.duckdb"))
    try:
        _fill(con)
    finally:
        con.close()
    settings = Settings.load(warehouse=warehouse, as_of=END, horizon_days=90,
                             duckdb_threads=2, duckdb_memory_limit="1GB")
    run_dbt(settings, ["build", "--select", "+model_monitoring", "+model_monitoring_reliability"])
    return warehouse


def _query(warehouse: Path, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(warehouse / "churnwatch.duckdb"), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def _expected_segments(warehouse: Path):
    """(key, y, p) per closed run and segment, outcomes computed here from raw.orders."""
    scores = _query(warehouse, "select * from scoring.churn_scores order by customer_id")
    orders = _query(warehouse, "select customer_id, cast(order_ts as date) as order_date from raw.orders")
    scores["as_of_date"] = scores["as_of_date"].dt.date
    orders["order_date"] = orders["order_date"].dt.date
    ordered = orders.groupby("customer_id")["order_date"].apply(list).to_dict()
    for (as_of, horizon, name, version), run in scores.groupby(
            ["as_of_date", "horizon_days", "model_name", "model_version"]):
        if (as_of, horizon) not in CLOSED:
            continue
        end = as_of + dt.timedelta(days=horizon)
        y = np.array([not any(as_of < d <= end for d in ordered.get(c, [])) for c in run["customer_id"]], float)
        p = run["churn_probability"].to_numpy()
        yield (as_of, horizon, name, version, "all", "all"), y, p
        for tier in sorted(run["risk_tier"].unique()):
            mask = (run["risk_tier"] == tier).to_numpy()
            yield (as_of, horizon, name, version, "risk_tier", tier), y[mask], p[mask]


def _mart(warehouse: Path, name: str) -> pd.DataFrame:
    frame = _query(warehouse, f"select * from marts.{name}")
    frame["as_of_date"] = frame["as_of_date"].dt.date
    return frame


def test_realized_metrics_equal_the_training_metrics(warehouse):
    mart = _mart(warehouse, "model_monitoring").set_index(KEYS)
    expected = list(_expected_segments(warehouse))
    assert len(mart) == len(expected) and mart.index.is_unique
    undefined = 0
    for key, y, p in expected:
        row = mart.loc[key]
        assert row["customers"] == len(y) and row["churned_customers"] == y.sum(), key
        assert row["churn_rate"] == pytest.approx(y.mean(), abs=1e-12)
        for column, metric in METRICS.items():
            want, got = metric(y, p), row[column]
            if math.isnan(want):
                undefined += 1
                assert pd.isna(got), (key, column, got)
            else:
                assert abs(got - want) <= 1e-9, (key, column, got, want)
    assert undefined >= 2  # the all-churned run: AUC and PR-AUC undefined (NULL)


def test_reliability_table_equals_the_calibration_table(warehouse):
    mart = _mart(warehouse, "model_monitoring_reliability")
    for key, y, p in _expected_segments(warehouse):
        rows = mart.set_index(KEYS).loc[[key]].sort_values("bin_number")
        table = metrics.calibration_table(y, p)
        assert rows["bin_number"].tolist() == list(range(1, len(table["share"]) + 1)), key
        for column, name in [("mean_churn_probability", "predicted"), ("observed_churn_rate", "observed"),
                             ("share_of_customers", "share")]:
            assert np.abs(rows[column].to_numpy() - table[name]).max() <= 1e-9, (key, column)


def test_only_closed_horizons_are_measured(warehouse):
    mart = _mart(warehouse, "model_monitoring")
    measured = set(zip(mart["as_of_date"], mart["horizon_days"]))
    assert measured == CLOSED  # a window ending on END counts, one ending a day later not yet
    assert (mart["horizon_end_date"].dt.date <= END).all()
    assert str(_query(warehouse, "select typeof(horizon_end_date) as t from marts.model_monitoring limit 1")["t"][0]) == "DATE"


def test_segments_add_up_to_all(warehouse):
    mart = _mart(warehouse, "model_monitoring")
    runs = ["as_of_date", "horizon_days", "model_version"]
    tiers = mart[mart["segment_type"] == "risk_tier"].groupby(runs)[["customers", "churned_customers"]].sum()
    whole = mart[mart["segment_type"] == "all"].set_index(runs)[["customers", "churned_customers"]]
    pd.testing.assert_frame_equal(tiers.sort_index(), whole.sort_index(), check_dtype=False)
    assert set(mart["segment"]) == {"all", "high", "medium", "low"}


@pytest.mark.parametrize("name", ["model_monitoring", "model_monitoring_reliability"])
def test_every_column_is_described_and_tested(warehouse, name):
    manifest = json.loads((warehouse / "dbt" / "target" / "manifest.json").read_text())
    node = next(n for n in manifest["nodes"].values() if n["resource_type"] == "model" and n["name"] == name)
    columns = _query(warehouse, f"select * from marts.{name} limit 0").columns.tolist()
    assert list(node["columns"]) == columns
    assert all(c["description"].strip() for c in node["columns"].values())
    tested = {t.get("column_name") for t in manifest["nodes"].values()
              if t["resource_type"] == "test" and t.get("attached_node") == node["unique_id"]}
    assert set(columns) <= tested
