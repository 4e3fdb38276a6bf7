"""The pipeline's data-quality gates: which table, which suite, which run-time parameters.

``ml.core.quality`` knows how to run a suite; this module knows what each stage must check:

- ``gate_raw`` — every ``raw.*`` table after ingest (suite ``raw_layer``);
- ``gate_features`` — ``marts.customer_features`` at the scoring cutoff (suite
  ``customer_features``), with distribution bounds learnt from the last good run: when the gate
  passes, this run's per-feature statistics replace the ones in ``quality.feature_baselines``;
- ``gate_scores`` — ``scoring.churn_scores`` for the run (suite ``churn_scores``).

Each raises ``QualityGateError`` on failure, so the Airflow task fails and nothing downstream
runs; Data Docs for the run land under ``<warehouse>/data_docs/<run id>/``. The run id comes
from the caller, else from Airflow's task environment, else ``manual``.
"""
from __future__ import annotations

import datetime as dt
import logging
import os

from ml.core.context import resolve_run
from ml.core.contract import SOURCES
from ml.core.quality import Check, GateResult, run_gate
from ml.core.settings import Settings
from ml.core.warehouse import connect, fetch_frame

log = logging.getLogger(__name__)

BASELINE_TABLE = "quality.feature_baselines"


def _run_id(run_id: str | None) -> str:
    return run_id or os.environ.get("AIRFLOW_CTX_DAG_RUN_ID") or "manual"


def _scalar(con, sql: str, params: list | None = None):
    """One value, fetched to the end (DuckDB 2 refuses new work while a result is unfinished)."""
    return con.execute(sql, params or []).fetchall()[0][0]


def _table_exists(con, schema: str, table: str) -> bool:
    return bool(_scalar(con, "select count(*) from information_schema.tables where table_schema = ? "
                             "and table_name = ?", [schema, table]))


def _frame(con, sql: str, params: list | None = None):
    """A table as pandas, DATE columns as datetime64 so suites can bound them with datetimes."""
    import pandas as pd

    frame = fetch_frame(con, sql, params)
    for col in frame.columns:
        first = frame[col].first_valid_index()
        if frame[col].dtype == object and first is not None and isinstance(frame[col][first], dt.date):
            frame[col] = pd.to_datetime(frame[col])
    return frame


def _gate(settings: Settings, gate: str, checks: list[Check], run_id: str | None) -> GateResult:
    return run_gate(gate, checks, settings.data_docs_dir, _run_id(run_id), keep_runs=settings.data_docs_keep_runs)


# ---- raw layer ----------------------------------------------------------------------------


def _staged_counts(con, as_of) -> dict[str, int]:
    """Rows staged per source by the last successful ingest for ``as_of``."""
    rows = con.execute(
        "select source, rows_staged from raw._ingest_log where status = 'staged' and as_of_date = ? "
        "qualify row_number() over (partition by source order by loaded_at desc) = 1",
        [as_of],
    ).fetchall()
    return dict(rows)


def gate_raw(settings: Settings, run_id: str | None = None) -> GateResult:
    """Every raw table after ingest: contract columns, keys, ranges, dates, PII hashed, counts reconciled."""
    checks = []
    settings = resolve_run(settings)  # without an as-of date: the last good ingest's
    with connect(settings, read_only=True) as con:
        staged = _staged_counts(con, settings.as_of)
        for name, source in SOURCES.items():
            if not _table_exists(con, "raw", name):
                continue
            rows = _scalar(con, f"select count(*) from raw.{name}")
            if rows == 0 and not source.required:
                continue  # an optional source that was not supplied
            sampled = rows > settings.quality_max_rows
            sql = f"select * from raw.{name}" + (
                f" using sample reservoir({int(settings.quality_max_rows)} rows) repeatable ({settings.seed})"
                if sampled else "")
            params = {"source": name, "as_of": settings.as_of, "max_amount": settings.max_amount,
                      "rows_staged": None if sampled else staged.get(name), "sampled": sampled}
            keys = tuple(c.name for c in source.columns if c.key)[:2]
            checks.append(Check(f"raw_{name}", _frame(con, sql), "raw_layer", params, keys))
    return _gate(settings, "raw_layer", checks, run_id)


# ---- features -------------------------------------------------------------------------------


def load_baseline(settings: Settings) -> dict[str, dict]:
    """The last good run's statistics per feature column ({} before the first good run)."""
    with connect(settings, read_only=True) as con:
        if not _table_exists(con, "quality", "feature_baselines"):
            return {}
        rows = con.execute(
            f"select column_name, row_count, null_share, mean, stddev from {BASELINE_TABLE}"
        ).fetchall()
    return {c: {"row_count": n, "null_share": z, "mean": m, "stddev": s} for c, n, z, m, s in rows}


def feature_statistics(frame) -> list[tuple]:
    """(column, row_count, null_share, mean, stddev) per column, plus a ``_rows`` row for the table."""
    import pandas as pd

    out = [("_rows", len(frame), 0.0, None, None)]
    for col in frame.columns:
        series = frame[col]
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        values = series.astype(float) if numeric else None
        out.append((
            col, len(frame), float(series.isna().mean()) if len(frame) else 0.0,
            float(values.mean()) if numeric and values.notna().any() else None,
            float(values.std()) if numeric and values.notna().sum() > 1 else None,
        ))
    return out


def _learn_baseline(settings: Settings, frame, run_id: str) -> None:
    """This run's feature statistics become the bounds for the next run (the last good run's)."""
    import pandas as pd

    stats = pd.DataFrame(feature_statistics(frame), columns=["column_name", "row_count", "null_share", "mean", "stddev"])
    stats["as_of_date"], stats["run_id"] = settings.as_of, run_id
    with connect(settings) as con:
        con.execute("create schema if not exists quality")
        con.execute("begin")
        con.execute(f"create or replace table {BASELINE_TABLE} as select * from stats")
        con.execute("commit")
    log.info("learnt feature bounds from run %s (%d columns)", run_id, len(stats) - 1)


def gate_features(settings: Settings, run_id: str | None = None) -> GateResult:
    """customer_features at the scoring cutoff: keys, ranges, freshness, bounds learnt from the last good run."""
    with connect(settings, read_only=True) as con:
        frame = _frame(con, "select * from marts.customer_features where as_of_date = ?", [settings.as_of])
    params = {
        "min_rows": 1,
        "as_of": settings.as_of,
        "columns": list(frame.columns),
        "max_staleness_days": settings.max_feature_staleness_days,
        "baseline": load_baseline(settings),
        "drift_sd": settings.feature_drift_sd,
    }
    result = _gate(settings, "customer_features", [Check("customer_features", frame, "customer_features", params,
                                                         ("customer_id",))], run_id)
    _learn_baseline(settings, frame, _run_id(run_id))
    return result


# ---- scores ---------------------------------------------------------------------------------


def gate_scores(settings: Settings, run_id: str | None = None) -> GateResult:
    """The scores: one row per active customer, probabilities in [0, 1], every customer in a tier."""
    with connect(settings, read_only=True) as con:
        frame = _frame(
            con,
            "select * from scoring.churn_scores where as_of_date = ? and horizon_days = ?",
            [settings.as_of, settings.horizon_days],
        )
        active = _scalar(
            con, "select count(distinct customer_id) from raw.orders where order_ts < ?::date + interval 1 day",
            [settings.as_of],
        )
    params = {"expected_rows": active, "as_of": settings.as_of, "horizon_days": settings.horizon_days}
    return _gate(settings, "churn_scores", [Check("churn_scores", frame, "churn_scores", params,
                                                  ("customer_id", "churn_probability", "risk_tier"))], run_id)
