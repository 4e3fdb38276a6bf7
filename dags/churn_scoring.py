"""
### churn_scoring — on fresh features: scores, campaign, marts, publish

Runs whenever `churn_features` emits the **customer_features** Asset (or by hand). Scores every
active customer with the MLflow `champion` of the horizon (training one first if the horizon has
none), gates the scores, picks the retention audience within the **campaign budget** with a
random **control share**, builds the dbt CRM and analytics marts (one task per model and per
model's tests), and publishes atomically: Parquet snapshots, the analyst catalog
`analytics.duckdb`, and the CRM export `exports/crm/<campaign_id>.{csv,parquet}`.

The as-of date comes from the form, else from the features event that triggered the run, else
the last ingest.
"""
from __future__ import annotations

from airflow.sdk import dag

from ml.faces import airflow_tasks as t
from ml.faces.assets import CUSTOMER_FEATURES


@dag(dag_id="churn_scoring", schedule=[CUSTOMER_FEATURES], **t.dag_kwargs(__doc__, "scoring"))
def churn_scoring():
    run = t.resolve_run()
    decided = t.decide_retention(t.validate_scores(t.score(t.train_if_needed(run))))
    published = t.publish(decided)
    t.marts_step(decided, run) >> published


churn_scoring()
