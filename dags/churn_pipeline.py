"""
### churn_pipeline — the whole churnwatch job, one run per as-of date

Raw shop exports → DuckDB `raw.*` (bad rows quarantined) → dbt point-in-time features →
Great Expectations gate → LightGBM training (when asked, or when no champion exists) → scoring
with the `champion` model → gate on the scores → atomic publish to the analyst catalog.

Trigger it from the form: pick the **as-of date** (empty: the last order date in the data),
the **horizon**, whether to **retrain**, and the campaign **budget**. A failed data-quality gate
stops the run before anything published is touched.
"""
from __future__ import annotations

import os

import pendulum
from airflow.sdk import Param, dag, task

from ml.assets import ANALYST_CATALOG, CUSTOMER_FEATURES, RAW_LAYER

PARAMS = {
    "as_of_date": Param(
        None, type=["null", "string"], format="date", title="As-of date",
        description="Score customers as of this day. Empty: the last order date in the data.",
    ),
    "horizon_days": Param(
        90, type="integer", minimum=7, maximum=365, title="Horizon (days)",
        description="A customer has churned if they place no order within this many days after the as-of date.",
    ),
    "retrain": Param(
        False, type="boolean", title="Retrain the model",
        description="Train a challenger and run the promotion gate before scoring.",
    ),
    "campaign_budget": Param(
        10000.0, type="number", minimum=0, title="Campaign budget",
        description="Spend cap for the retention campaign built from these scores.",
    ),
    "control_share": Param(
        0.10, type="number", minimum=0, maximum=0.5, title="Control share",
        description="Share of the campaign audience kept out of contact, to measure the effect.",
    ),
    "raw_dir": Param(
        os.environ.get("CHURNWATCH_RAW_DIR", ""), type="string", title="Raw data folder",
        description="Folder with orders (required) and the optional sources, CSV or Parquet.",
    ),
    "warehouse": Param(
        os.environ.get("CHURNWATCH_WAREHOUSE", "warehouse"), type="string", title="Warehouse folder",
        description="Where churnwatch.duckdb, analytics.duckdb, exports and the MLflow store live.",
    ),
}


def _settings(as_of: str | None = None):
    from airflow.sdk import get_current_context

    from ml.settings import settings_from_params

    return settings_from_params(get_current_context()["params"], as_of=as_of)


@dag(
    dag_id="churn_pipeline",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params=PARAMS,
    tags=["churnwatch"],
    default_args={"owner": "churnwatch", "retries": 0},
    doc_md=__doc__,
)
def churn_pipeline():
    @task(outlets=[RAW_LAYER])
    def ingest(**context) -> dict:
        """Load raw exports into DuckDB; quarantine bad rows; infer the as-of date if empty."""
        from ml.ingest import ingest as run_ingest

        return run_ingest(_settings(), run_id=context["run_id"]).to_dict()

    @task(outlets=[CUSTOMER_FEATURES])
    def build_features(ingested: dict) -> str:
        """dbt build of staging, intermediate and the point-in-time feature marts."""
        from ml.transform import build_features as run_dbt_build

        run_dbt_build(_settings(ingested["as_of"]))
        return ingested["as_of"]

    @task
    def validate_features(as_of: str) -> str:
        """Great Expectations gate on customer_features at the scoring cutoff."""
        from ml.gates import gate_features

        gate_features(_settings(as_of))
        return as_of

    @task
    def train_if_needed(as_of: str) -> str:
        """Train a challenger (and run the promotion gate) when asked or when there is no champion."""
        from ml.train import train_if_needed as run_train

        return run_train(_settings(as_of))

    @task
    def score(as_of: str, _trained: str, **context) -> str:
        """Score every active customer with the champion: probability, tier, reasons, value at risk."""
        from ml.score import score as run_score

        run_score(_settings(as_of), scored_at=context["logical_date"] or context["run_after"])
        return as_of

    @task
    def validate_scores(as_of: str) -> str:
        """Great Expectations gate on the scores before anything is published."""
        from ml.gates import gate_scores

        gate_scores(_settings(as_of))
        return as_of

    @task(outlets=[ANALYST_CATALOG])
    def publish(as_of: str) -> dict:
        """Write Parquet snapshots and swap in the analyst catalog atomically."""
        from ml.publish import publish as run_publish

        return run_publish(_settings(as_of))

    as_of = validate_features(build_features(ingest()))
    publish(validate_scores(score(as_of, train_if_needed(as_of))))


churn_pipeline()
