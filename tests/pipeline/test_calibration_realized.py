"""The published churn probabilities of the demo shop are calibrated against what happened next.

The demo shop (``make demo``: 10,000 customers, seed 7, data to 2025-12-31) is scored as of
2025-10-02, so its last 90 days are the real future of the published scores: a customer churned
when they placed no order (any status) in (as-of, as-of + 90 days], the pipeline's own label.
The pipeline ignores every record after the as-of date (ingest counts them as ``rows_after_as_of``).

Stage functions rather than an Airflow run (ingest → features → train → score with the default
settings, as ``churnwatch run`` calls them): the question is the numbers the pipeline publishes,
not the orchestration, and this keeps the test near 2 minutes.

Before the fix (8 training cutoffs, 7 months: no label window of the autumn season, Black Friday
and the winter peak, was ever seen) the realized ECE was 0.025; with a year of cutoffs it is 0.015.
The generator's own true probabilities reach 0.008 on the same customers (the noise floor).
"""
from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_calibration import realized_churn  # noqa: E402  one definition of "what happened next"


DEMO_CUSTOMERS, DEMO_SEED, DEMO_END = 10_000, 7, dt.date(2025, 12, 31)
HORIZON = 90
AS_OF = DEMO_END - dt.timedelta(days=HORIZON)
MAX_ECE = 0.02


def test_published_scores_of_the_demo_shop_are_calibrated_on_its_real_future(tmp_path):
    os.environ.setdefault("CHURNWATCH_PII_SALT", "test-only-salt")
    from ml.stages.ingest import ingest
    from ml.model.metrics import auc, expected_calibration_error
    from ml.stages.score import score
    from ml.core.settings import Settings
    from ml.synth import generate
    from ml.stages.train import train
    from ml.stages.features import build_features
    from ml.core.warehouse import connect

    raw = tmp_path / "raw"
    generate(raw, customers=DEMO_CUSTOMERS, seed=DEMO_SEED, end_date=DEMO_END)
    settings = Settings.load(warehouse=tmp_path / "w", raw_dir=raw, as_of=AS_OF, horizon_days=HORIZON, retrain=True)
    ingest(settings)
    build_features(settings)
    train(settings)
    score(settings)
    with connect(settings, read_only=True) as con:
        published = con.execute("select customer_id, churn_probability from scoring.churn_scores "
                                "where as_of_date = ? and horizon_days = ?", [AS_OF, HORIZON]).df()
    y = realized_churn(raw, published["customer_id"].tolist(), AS_OF, HORIZON)
    p = published["churn_probability"].to_numpy()
    assert len(published) > 7_000 and 0 < y.sum() < len(y)
    assert auc(y, p) > 0.85
    ece = expected_calibration_error(y, p)
    assert ece <= MAX_ECE, (f"realized ECE {ece:.4f} > {MAX_ECE} (mean probability {p.mean():.3f}, "
                            f"realized churn {y.mean():.3f}, {len(y)} customers)")
