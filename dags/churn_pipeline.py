"""
### churn_pipeline — the whole churnwatch job in one run

Raw shop exports → DuckDB `raw.*` (bad rows quarantined) → raw-layer gate → **dbt** point-in-time
features (one `dbt build` of the layer, with its tests) → feature gate → LightGBM
training when asked or when the horizon has no champion → scoring with the `champion` model →
score gate → retention decision under the budget → **dbt** CRM and analytics marts → atomic
publish to the analyst catalog and the CRM export.

This is the job `churnwatch run` and `make demo` execute (through `dag.test()`), and the one to
trigger by hand for a complete, consistent result. The same tasks, split by cadence, make the
scheduled DAGs `churn_features` (daily), `churn_training` (weekly) and `churn_scoring`
(on fresh features); those show every dbt model and test as its own task (Cosmos), which costs
a few seconds of dbt start-up per node, so the one-shot job runs each dbt layer as one task.

**Trigger form**: *as-of date* (empty: the last order date in the data), *horizon*, *retrain*,
*campaign budget*, *control share*, the raw folder and the warehouse. A failed data-quality gate
fails its task without retry and nothing published is touched; every failure appends an alert
to `<warehouse>/alerts/alerts.jsonl`.
"""
from __future__ import annotations

from airflow.sdk import dag

from ml.faces import airflow_tasks as t


@dag(dag_id="churn_pipeline", schedule=None, **t.dag_kwargs(__doc__, "one-shot"))
def churn_pipeline():
    run = t.validate_raw(t.ingest())
    features = t.validate_features(run)
    t.features_step(run, per_model=False) >> features
    trained = t.train_if_needed(features)
    decided = t.decide_retention(t.validate_scores(t.score(trained)))
    t.train_uplift(trained) >> decided
    published = t.publish(decided)
    t.marts_step(decided, run, per_model=False) >> published


churn_pipeline()
