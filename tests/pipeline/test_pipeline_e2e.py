"""The walking skeleton end to end: generated shop → Airflow DAG → published churn scores."""
from __future__ import annotations

import csv
import datetime as dt

import duckdb
import pytest

from helpers.run import END_DATE, HORIZON, QUICK_TRAINING, churnwatch


CONTRACT_COLUMNS = [
    "customer_id", "as_of_date", "horizon_days", "churn_probability", "risk_tier", "predicted_value",
    "value_at_risk", "reason_1", "reason_2", "reason_3", "model_name", "model_version", "run_id", "scored_at",
]


def _analytics(warehouse):
    from ml.core.catalog import connect_catalog  # views name files relative to the catalog

    return connect_catalog(warehouse / "analytics.duckdb")


def test_published_scores_follow_the_contract(pipeline_s, shop_s):
    con = _analytics(pipeline_s)
    cols = [r[0] for r in con.execute("describe marts.churn_scores").fetchall()]
    assert cols[: len(CONTRACT_COLUMNS)] == CONTRACT_COLUMNS
    rows, customers, as_of, horizon, pmin, pmax = con.execute(
        "select count(*), count(distinct customer_id), min(as_of_date), max(horizon_days), "
        "min(churn_probability), max(churn_probability) from marts.churn_scores"
    ).fetchone()
    assert rows == customers > 1000
    assert as_of == END_DATE and horizon == HORIZON
    assert 0.0 <= pmin <= pmax <= 1.0
    # every customer with an order on or before the as-of date is scored, nobody else
    expected = duckdb.sql(
        f"select count(distinct customer_id) from read_parquet('{shop_s}/orders.parquet') "
        f"where order_ts < date '{END_DATE}' + interval 1 day"
    ).fetchall()[0][0]
    assert rows == expected


def test_scores_are_informative_and_explained(pipeline_s):
    con = _analytics(pipeline_s)
    auc, version = con.execute("select auc, model_version from marts.model_performance").fetchone()
    assert auc > 0.70, f"test AUC {auc:.3f} is too low for a generated shop"
    tiers = dict(con.execute("select risk_tier, count(*) from marts.churn_scores group by 1").fetchall())
    assert set(tiers) <= {"high", "medium", "low"} and tiers.get("high", 0) > 0
    explained = con.execute(
        "select avg((reason_1 is not null)::int) from marts.churn_scores where risk_tier = 'high'"
    ).fetchone()[0]
    assert explained > 0.95
    assert con.execute("select count(distinct model_version) from marts.churn_scores").fetchone()[0] == 1


def test_the_published_scores_come_from_the_champion_and_the_latest_version_is_the_challenger(pipeline_s):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{pipeline_s / 'mlflow' / 'mlflow.db'}")
    name = f"churnwatch_churn_{HORIZON}d"
    champion = client.get_model_version_by_alias(name, "champion")
    challenger = client.get_model_version_by_alias(name, "challenger")
    latest = max(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
    published = _analytics(pipeline_s).execute("select distinct model_name, model_version from marts.churn_scores").fetchall()
    assert published == [(name, str(champion.version))]  # scoring loads the champion alias
    assert int(challenger.version) == latest  # every training registers a challenger
    # the run's one training was the first model: promoted, with its decision recorded on the version
    assert int(champion.version) == 1 and "promoted" in champion.tags.get("promotion_decision", "")


def test_orders_only_input_runs_end_to_end(shop_s, tmp_path):
    """The pipeline runs on a folder holding only orders.csv with the four required columns."""
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = duckdb.sql(
        f"select order_id, customer_id, order_ts, amount from read_parquet('{shop_s}/orders.parquet') "
        "order by order_ts limit 60000"
    ).fetchall()
    with open(raw / "orders.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["order_id", "customer_id", "order_ts", "amount"])
        writer.writerows(rows)
    as_of = max(r[2] for r in rows).date()
    warehouse = tmp_path / "w"
    churnwatch("run", "--raw-dir", str(raw), "--as-of", as_of.isoformat(), "--horizon-days", "90",
               "--warehouse", str(warehouse), env=QUICK_TRAINING)
    con = _analytics(warehouse)
    n, leading_zero_ids = con.execute(
        "select count(*), count(*) filter (where customer_id like '0%') from marts.churn_scores"
    ).fetchone()
    assert n > 500
    ids_in = {r[1] for r in rows if r[2].date() <= as_of}
    assert n == len(ids_in)
    assert leading_zero_ids == sum(1 for i in ids_in if i.startswith("0"))
