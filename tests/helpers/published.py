"""Pipeline tables of the published shapes, filled directly (fast): what the publish reads."""
from __future__ import annotations

import datetime as dt

import duckdb

from ml.core.settings import Settings

AS_OF = dt.date(2025, 12, 31)
HORIZON = 90


def fill(settings: Settings, rows: int, tag: str, as_of: dt.date = AS_OF) -> None:
    """Replace the run's rows in the pipeline tables the publish reads; every row carries ``tag``."""
    campaign = settings.replace(as_of=as_of).campaign_id
    settings.warehouse.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.db_path))
    try:
        for schema in ("scoring", "marts", "ml"):
            con.execute(f"create schema if not exists {schema}")
        con.execute(f"""
            create table if not exists scoring.churn_scores as
            select lpad(i::varchar, 8, '0') as customer_id, date '{as_of}' as as_of_date, {HORIZON} as horizon_days,
                   0.5 as churn_probability, 'medium' as risk_tier, 10.0 as predicted_value, 5.0 as value_at_risk,
                   'r1' as reason_1, null::varchar as reason_2, null::varchar as reason_3,
                   'churnwatch_churn_90d' as model_name, '1' as model_version, 'tag' as run_id,
                   timestamp '2026-01-01' as scored_at
            from range(0) t(i)""")
        con.execute("delete from scoring.churn_scores where as_of_date = ?", [as_of])
        con.execute(f"""
            insert into scoring.churn_scores
            select lpad(i::varchar, 8, '0'), date '{as_of}', {HORIZON}, (i % 997) / 997.0, 'medium', 10.0 + i % 50,
                   5.0, 'days_since_last_order', null, null, 'churnwatch_churn_90d', '1', '{tag}', timestamp '2026-01-01'
            from range({rows}) t(i)""")
        con.execute(f"""
            create or replace table marts.retention_audience as
            select '{campaign}' as campaign_id, lpad(i::varchar, 8, '0') as customer_id, 'coupon' as action,
                   'COUPON10' as offer_code, 'email' as channel, ['P1', 'P2'] as recommended_products,
                   i % 10 = 0 as is_control, i + 1 as priority_rank, 1.0 as expected_net_value,
                   '{tag}' as reason_summary, date '{as_of}' as as_of_date, {HORIZON} as horizon_days,
                   '1' as model_version, case when i % 10 = 0 then 'control' else 'targeted' end as assignment,
                   1.0 as propensity
            from range({rows // 10}) t(i)""")
        con.execute("""
            create or replace table ml.model_performance as
            select '1' as model_version, date '2025-10-02' as as_of_date, 0.8 as auc""")
        # what the marts step's dbt builds over the stages' own tables (the publish reads the marts)
        con.execute("create or replace view marts.churn_scores as select * from scoring.churn_scores")
        con.execute("create or replace view marts.model_performance as select * from ml.model_performance")
    finally:
        con.close()
