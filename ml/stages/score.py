"""Score: the champion model on the scoring cutoff → ``scoring.churn_scores``.

Scores, risk tiers, the top three reasons and value at risk for every customer active at the
as-of date. Rows are keyed on (customer_id, as_of_date, horizon_days) and replaced in one
transaction, so rerunning a scoring run never duplicates.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from ml.core import registry
from ml.model.reasons import catalog_from_frame, read_catalog, top_reasons
from ml.core.settings import Settings
from ml.core.warehouse import connect, fetch_arrow, fetch_frame, table_exists

log = logging.getLogger(__name__)

RISK_TIERS = (("high", 0.5), ("medium", 0.25), ("low", 0.0))  # lower bounds on calibrated probability


def risk_tier(prob: np.ndarray, tiers=RISK_TIERS) -> np.ndarray:
    out = np.full(len(prob), tiers[-1][0], dtype=object)
    for name, bound in reversed(tiers[:-1]):
        out[prob >= bound] = name
    return out


def load_population(settings: Settings):
    """The customers to score as an Arrow table (DECIMAL counts as float64): the model builds its
    matrix from Arrow columns directly, so no row ever becomes a Python object."""
    with connect(settings, read_only=True) as con:
        return fetch_arrow(con, "select * from marts.customer_features where as_of_date = ?", [settings.as_of])


def as_frame(table) -> pd.DataFrame:
    """A pandas view of the population: numbers as numpy, text kept in Arrow (no Python strings)."""
    import pyarrow as pa

    return table.to_pandas(types_mapper=lambda t: pd.ArrowDtype(t) if pa.types.is_string(t)
                           or pa.types.is_large_string(t) else None,
                           split_blocks=True)  # a block per column: no consolidating copy (~4x faster)


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


def scores_table(settings: Settings, population, prob: np.ndarray, value: np.ndarray, reasons: list[np.ndarray],
                 ref, scored_at: dt.datetime):
    """The rows of ``scoring.churn_scores`` as one Arrow table (built column by column)."""
    import pyarrow as pa

    n = population.num_rows
    tiers = risk_tier(prob, (("high", settings.risk_tier_high), ("medium", settings.risk_tier_medium), ("low", 0.0)))
    return pa.table({
        "customer_id": population.column("customer_id").cast(pa.string()),
        "as_of_date": population.column("as_of_date").cast(pa.date32()),
        "horizon_days": pa.array(np.full(n, settings.horizon_days, np.int64)),
        "churn_probability": pa.array(np.asarray(prob, float)),
        "risk_tier": pa.array(tiers, pa.string()),
        "predicted_value": pa.array(np.asarray(value, float)),
        "value_at_risk": pa.array(np.asarray(prob, float) * np.asarray(value, float)),
        "reason_1": pa.array(reasons[0], pa.string()),
        "reason_2": pa.array(reasons[1], pa.string()),
        "reason_3": pa.array(reasons[2], pa.string()),
        "model_name": pa.array([settings.registered_model_name] * n, pa.string()),
        "model_version": pa.array([str(ref.version)] * n, pa.string()),
        "run_id": pa.array([ref.run_id] * n, pa.string()),
        "scored_at": pa.array(np.full(n, np.datetime64(scored_at, "us"))),
    })


def write_scores(settings: Settings, scores) -> None:
    """Replace the run's rows of ``scoring.churn_scores`` in one transaction."""
    with connect(settings) as con:
        con.register("scores", scores)
        con.execute("create schema if not exists scoring")
        con.execute("create table if not exists scoring.churn_scores as select * from scores limit 0")
        con.execute("begin")
        con.execute(
            "delete from scoring.churn_scores where as_of_date = ? and horizon_days = ?",
            [settings.as_of, settings.horizon_days],
        )
        con.execute("insert into scoring.churn_scores by name select * from scores")
        con.execute("commit")


def score(settings: Settings, scored_at: dt.datetime | None = None) -> dict:
    """Score the population at ``settings.as_of`` with the champion and store the rows."""
    started = time.perf_counter()
    # the champion loads (MLflow, unpickling, LightGBM's imports: seconds, mostly holding the
    # GIL) while DuckDB reads the population (which releases it)
    with ThreadPoolExecutor(1) as pool:
        champion = pool.submit(registry.load_champion, settings)
        population = load_population(settings)
        model, ref = champion.result()
    if model.horizon_days != settings.horizon_days:
        raise RuntimeError(
            f"champion v{ref.version} was trained for a {model.horizon_days}-day horizon, "
            f"this run asks for {settings.horizon_days}; retrain with this horizon first"
        )
    if population.num_rows == 0:
        raise RuntimeError(f"no customers to score at {settings.as_of}: marts.customer_features has no rows for it")

    frame = as_frame(population)
    prob, contributions = model.explain(frame, matrix=model.spec.matrix(population))
    reasons = top_reasons(contributions, k=3, catalog=reason_catalog(settings), sides=model.value_side(population))
    value = predicted_value(frame, model)
    scored_at = scored_at or dt.datetime.combine(settings.as_of + dt.timedelta(days=1), dt.time())
    scores = scores_table(settings, population, prob, value, reasons, ref, scored_at)
    write_scores(settings, scores)
    summary = {
        "rows": scores.num_rows,
        "model_version": ref.version,
        "high_risk": int(np.sum(prob >= settings.risk_tier_high)),
        "mean_probability": float(prob.mean()),
        "seconds": round(time.perf_counter() - started, 2),
    }
    log.info("score %s", summary)
    return summary
