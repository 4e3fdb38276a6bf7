"""Score: the champion model on the scoring cutoff → ``scoring.churn_scores``.

Scores, risk tiers, the top three reasons and value at risk for every customer active at the
as-of date. Rows are keyed on (customer_id, as_of_date, horizon_days) and replaced in one
transaction, so rerunning a scoring run never duplicates.
"""
from __future__ import annotations

import datetime as dt
import logging
import time

import numpy as np
import pandas as pd

from ml import registry
from ml.reasons import catalog_from_frame, read_catalog, top_reasons
from ml.settings import Settings
from ml.warehouse import connect, fetch_frame, table_exists

log = logging.getLogger(__name__)

RISK_TIERS = (("high", 0.5), ("medium", 0.25), ("low", 0.0))  # lower bounds on calibrated probability


def risk_tier(prob: np.ndarray, tiers=RISK_TIERS) -> np.ndarray:
    out = np.full(len(prob), tiers[-1][0], dtype=object)
    for name, bound in reversed(tiers[:-1]):
        out[prob >= bound] = name
    return out


def load_population(settings: Settings) -> pd.DataFrame:
    with connect(settings, read_only=True) as con:
        return fetch_frame(
            con, "select * from marts.customer_features where as_of_date = ? order by customer_id", [settings.as_of]
        )


def predicted_value(population: pd.DataFrame, model=None) -> np.ndarray:
    """Spend expected over the next 365 days: the model's value forecast (BG/NBD × Gamma-Gamma),
    or last year's spend for a model without one."""
    if getattr(model, "value", None) is not None:
        return model.predicted_value(population)
    col = "amount_365d" if "amount_365d" in population else None
    if col is None:
        return np.zeros(len(population))
    return population[col].fillna(0.0).to_numpy(float)


def reason_catalog(settings: Settings) -> dict:
    """Readable reasons: the dbt seed table ``marts.reason_catalog`` when built, else the seed CSV."""
    with connect(settings, read_only=True) as con:
        if table_exists(con, "marts", "reason_catalog"):
            return catalog_from_frame(fetch_frame(con, "select * from marts.reason_catalog"))
    return read_catalog(settings.dbt_project_dir / "seeds" / "reason_catalog.csv")


def score(settings: Settings, scored_at: dt.datetime | None = None) -> dict:
    """Score the population at ``settings.as_of`` with the champion and store the rows."""
    started = time.perf_counter()
    model, ref = registry.load_champion(settings)
    if model.horizon_days != settings.horizon_days:
        raise RuntimeError(
            f"champion v{ref.version} was trained for a {model.horizon_days}-day horizon, "
            f"this run asks for {settings.horizon_days}; retrain with this horizon first"
        )
    population = load_population(settings)
    if population.empty:
        raise RuntimeError(f"no customers to score at {settings.as_of}: marts.customer_features has no rows for it")

    prob = model.predict_proba(population)
    reasons = top_reasons(model.contributions(population), k=3, catalog=reason_catalog(settings),
                          sides=model.value_side(population))
    value = predicted_value(population, model)
    scored_at = scored_at or dt.datetime.combine(settings.as_of + dt.timedelta(days=1), dt.time())
    scores = pd.DataFrame(
        {
            "customer_id": population["customer_id"].astype(str).to_numpy(),
            "as_of_date": pd.to_datetime(population["as_of_date"]).dt.date,
            "horizon_days": settings.horizon_days,
            "churn_probability": prob,
            "risk_tier": risk_tier(prob, (("high", settings.risk_tier_high), ("medium", settings.risk_tier_medium), ("low", 0.0))),
            "predicted_value": value,
            "value_at_risk": prob * value,
            "reason_1": reasons[0],
            "reason_2": reasons[1],
            "reason_3": reasons[2],
            "model_name": settings.registered_model_name,
            "model_version": ref.version,
            "run_id": ref.run_id,
            "scored_at": pd.Timestamp(scored_at),
        }
    )
    with connect(settings) as con:
        con.execute("create schema if not exists scoring")
        con.execute("create table if not exists scoring.churn_scores as select * from scores limit 0")
        con.execute("begin")
        con.execute(
            "delete from scoring.churn_scores where as_of_date = ? and horizon_days = ?",
            [settings.as_of, settings.horizon_days],
        )
        con.execute("insert into scoring.churn_scores by name select * from scores")
        con.execute("commit")
    summary = {
        "rows": len(scores),
        "model_version": ref.version,
        "high_risk": int((scores["risk_tier"] == "high").sum()),
        "mean_probability": float(prob.mean()),
        "seconds": round(time.perf_counter() - started, 2),
    }
    log.info("score %s", summary)
    return summary
