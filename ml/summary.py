"""A short human summary of the latest publication, read from the analyst catalog."""
from __future__ import annotations

import duckdb

from ml.settings import Settings


def summarise(settings: Settings) -> str:
    if not settings.analytics_path.exists():
        return f"nothing published yet under {settings.warehouse}"
    con = duckdb.connect(str(settings.analytics_path), read_only=True)
    try:
        as_of, horizon, rows, high, var, version = con.execute(
            """
            with latest as (select max(as_of_date) as d from marts.churn_scores)
            select as_of_date, any_value(horizon_days), count(*), count(*) filter (where risk_tier = 'high'),
                   sum(value_at_risk), max(model_version)
            from marts.churn_scores, latest where as_of_date = latest.d group by as_of_date
            """
        ).fetchone()
        auc = con.execute(
            "select auc, pr_auc, ece from marts.model_performance where model_version = ? "
            "order by as_of_date desc limit 1", [version]
        ).fetchone()
    finally:
        con.close()
    auc_line = f"test AUC {auc[0]:.3f}, PR-AUC {auc[1]:.3f}, ECE {auc[2]:.3f}" if auc else "no model metrics"
    return "\n".join(
        [
            "",
            f"churnwatch — scores as of {as_of}, horizon {horizon} days, model v{version}",
            f"  customers scored:      {rows:,}",
            f"  high-risk customers:   {high:,}",
            f"  value at risk:         {var:,.0f}",
            f"  model:                 {auc_line}",
            f"  analyst catalog:       {settings.analytics_path}  (duckdb -readonly)",
            f"  published snapshots:   {settings.published_dir}",
            f"  CRM exports:           {settings.crm_export_dir}",
            f"  MLflow store:          {settings.tracking_uri}",
            "  UIs:                   make up  → Airflow http://localhost:8080, MLflow http://localhost:5000",
            "",
        ]
    )
