"""The pipeline's data-quality gates: which table, which suite, which run-time parameters.

``ml.quality`` knows how to run a suite; this module knows what each stage must check.
"""
from __future__ import annotations

from ml.quality import GateResult, validate_dataframe
from ml.settings import Settings
from ml.warehouse import connect, fetch_frame


def _frame(settings: Settings, sql: str, params: list):
    with connect(settings, read_only=True) as con:
        return fetch_frame(con, sql, params)


def gate_features(settings: Settings) -> GateResult:
    """customer_features at the scoring cutoff: keys, ranges, at least one customer."""
    frame = _frame(settings, "select * from marts.customer_features where as_of_date = ?", [settings.as_of])
    return validate_dataframe(frame, "customer_features", {"min_rows": 1})


def gate_scores(settings: Settings) -> GateResult:
    """The scores: one row per active customer, probabilities in [0, 1], known tiers."""
    frame = _frame(
        settings,
        "select * from scoring.churn_scores where as_of_date = ? and horizon_days = ?",
        [settings.as_of, settings.horizon_days],
    )
    with connect(settings, read_only=True) as con:
        expected = con.execute(
            "select count(*) from marts.customer_features where as_of_date = ?", [settings.as_of]
        ).fetchone()[0]
    return validate_dataframe(frame, "churn_scores", {"expected_rows": expected})
