"""
### churn_features — daily: raw exports to point-in-time customer features

Ingests the shop's exports into DuckDB `raw.*` (bad rows to `quarantine.*`), gates the raw layer,
builds the dbt feature layer (staging → intermediate → `marts.customer_features` and
`marts.training_examples`; one task per model and per model's tests), gates the features, and
emits the **customer_features** Asset with the as-of date — which schedules `churn_scoring`.

Set the raw folder with `CHURNWATCH_RAW_DIR` (or in the form). An empty *as-of date* means the
last order date in the data.
"""
from __future__ import annotations

from airflow.sdk import dag

from ml.faces import airflow_tasks as t


@dag(dag_id="churn_features", schedule="@daily", **t.dag_kwargs(__doc__, "features"))
def churn_features():
    run = t.validate_raw(t.ingest())
    features = t.validate_features(run)
    t.features_step(run) >> features
    t.announce_features(features)


churn_features()
