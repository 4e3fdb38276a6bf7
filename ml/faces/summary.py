"""A short human summary of one horizon's latest publication, read from the analyst catalog.

One warehouse may hold runs of several horizons (a 60-day model beside the 90-day one): their
scores share customers and as-of dates, and each horizon has its own registered model whose
versions count from 1. So every figure is taken for one horizon, and every line names it; the
horizon defaults to that of the run that published the catalog (``marts._catalog``).
"""
from __future__ import annotations

import os

from ml.core.catalog import connect_catalog
from ml.core.settings import Settings


def _latest_horizon(con) -> int | None:
    """The horizon of the run that published this catalog (catalogs before it was recorded: of
    the latest scoring run)."""
    columns = {r[0] for r in con.execute("select column_name from information_schema.columns "
                                         "where table_schema = 'marts' and table_name = '_catalog'").fetchall()}
    if "horizon_days" in columns:
        recorded = con.execute("select horizon_days from marts._catalog").fetchall()[0][0]
        if recorded is not None:
            return int(recorded)
    latest = con.execute("select max_by(horizon_days, scored_at) from marts.churn_scores").fetchall()[0][0]
    return None if latest is None else int(latest)


def summarise(settings: Settings, horizon_days: int | None = None) -> str:
    """The summary of ``horizon_days`` (default: the latest run's horizon)."""
    if not settings.analytics_path.exists():
        return f"nothing published yet under {settings.warehouse}"
    con = connect_catalog(settings.analytics_path)
    try:
        horizons = [r[0] for r in con.execute(
            "select distinct horizon_days from marts.churn_scores order by 1").fetchall()]
        horizon = horizon_days if horizon_days is not None else _latest_horizon(con)
        if horizon not in horizons:
            published = ", ".join(f"{h} days" for h in horizons) or "none"
            raise ValueError(f"no scores published for horizon {horizon} days (published horizons: {published})")
        as_of, rows, high, var, model_name, version = con.execute(
            """
            with run as (
                select * from marts.churn_scores
                where horizon_days = $h
                  and as_of_date = (select max(as_of_date) from marts.churn_scores where horizon_days = $h)
            )
            select any_value(as_of_date), count(*), count(*) filter (where risk_tier = 'high'),
                   sum(value_at_risk), max_by(model_name, scored_at), max_by(model_version, scored_at)
            from run
            """, {"h": horizon},
        ).fetchall()[0]
        metrics = con.execute(
            "select auc, pr_auc, ece, test_cutoff from marts.model_performance "
            "where horizon_days = ? and model_name = ? and model_version = ? order by as_of_date desc limit 1",
            [horizon, model_name, version],
        ).fetchall()
    finally:
        con.close()
    h = f"({horizon} d)"
    if metrics:
        auc, pr_auc, ece, test_cutoff = metrics[0]
        model_line = f"test AUC {auc:.3f}, PR-AUC {pr_auc:.3f}, ECE {ece:.3f} (backtest cutoff {test_cutoff})"
    else:
        model_line = "no model metrics"
    others = [x for x in horizons if x != horizon]
    lines = [
        "",
        f"churnwatch — scores as of {as_of}, horizon {horizon} days, model {model_name} v{version}",
        f"  customers scored {h}:     {rows:,}",
        f"  high-risk customers {h}:  {high:,}",
        f"  value at risk {h}:        {var:,.0f}",
        f"  model {h}:                {model_line}",
    ]
    if others:
        lines.append(f"  other horizons:        {', '.join(f'{x} days' for x in others)}"
                     f"  (churnwatch summary --horizon-days {others[0]})")
    # the ports `make up` uses (it reads the same variables), so the links work as printed
    airflow_port, mlflow_port = os.environ.get("AIRFLOW_PORT", "8080"), os.environ.get("MLFLOW_PORT", "5000")
    lines += [
        f"  analyst catalog:       {settings.analytics_path}  (churnwatch sql --warehouse {settings.warehouse})",
        f"  published snapshots:   {settings.published_dir}",
        f"  CRM exports:           {settings.crm_export_dir}",
        f"  MLflow store:          {settings.tracking_uri}",
        f"  UIs:                   make up  → Airflow http://127.0.0.1:{airflow_port}, "
        f"MLflow http://127.0.0.1:{mlflow_port}/#/models (login: .secrets/churnwatch.env)",
        "",
    ]
    return "\n".join(lines)
