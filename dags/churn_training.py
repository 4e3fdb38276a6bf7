"""
### churn_training — weekly and on demand: a challenger and the promotion gate

Takes the features already built (by `churn_features` or `churn_pipeline`) at the as-of date
(empty: the last one ingested), gates them, trains a LightGBM **challenger** on the earlier
cutoffs with a time-split backtest, registers it in MLflow with alias `challenger`, and runs the
**promotion gate**: `champion` moves only when the challenger is better on the backtest
(AUC gain, calibration not worse). The decision is tagged on the model version.

Then the **uplift model** (`train_uplift`): trained on the earlier campaigns, judged on the latest
closed one, `champion` of its own registered model only when it ranks better than the catalog's
priors; the retention policy uses it from then on.

Promote or roll back by hand in the MLflow UI by moving the `champion` alias; the next scoring
run uses it.
"""
from __future__ import annotations

from airflow.sdk import dag

from ml.faces import airflow_tasks as t


@dag(dag_id="churn_training", schedule="@weekly", **t.dag_kwargs(__doc__, "training", retrain_default=True))
def churn_training():
    t.train_uplift(t.train_challenger(t.validate_features(t.resolve_run())))


churn_training()
