"""The Great Expectations gates against good and bad data: raw layer, customer_features, scores.

Each test takes a copy of the good run's warehouse, breaks one table the way real data breaks,
and calls the gate as the Airflow task does: it must pass on good data, and on bad data raise
naming the expectation with sample offending rows, leave Data Docs for the run, and change
nothing published.
"""
from __future__ import annotations

import duckdb
import pytest

from helpers.quality import END_DATE, HORIZON, PIPELINE_DB, copy_warehouse, fingerprint, pipeline_query


@pytest.fixture
def warehouse(baseline, tmp_path):
    return copy_warehouse(baseline, tmp_path / "w")


def _settings(warehouse, **overrides):
    from ml.core.settings import Settings

    return Settings.load(warehouse=warehouse, as_of=END_DATE, horizon_days=HORIZON, **overrides)


def _tamper(warehouse, *sql: str) -> None:
    con = duckdb.connect(str(warehouse / PIPELINE_DB))
    try:
        for statement in sql:
            con.execute(statement)
    finally:
        con.close()


def _fails(gate, settings) -> str:
    from ml.core.quality import QualityGateError

    with pytest.raises(QualityGateError) as info:
        gate(settings, run_id="gate-test")
    return str(info.value)


# ---- raw layer ------------------------------------------------------------------------------------


def test_raw_gate_passes_on_the_good_run_and_keeps_data_docs(warehouse):
    from ml.stages.gates import gate_raw

    result = gate_raw(_settings(warehouse), run_id="manual__2025-12-31T00:00:00+00:00")
    assert result.success and result.evaluated > 30
    index = warehouse / "data_docs" / "manual__2025-12-31T00_00_00_00_00" / "index.html"
    assert result.data_docs == index.as_uri() and index.is_file()
    page = index.read_text()
    assert "raw_orders" in page and "raw_customers" in page
    assert "manual__2025-12-31T00_00_00_00_00" in (warehouse / "data_docs" / "index.html").read_text()


def test_raw_gate_catches_what_slipped_past_ingest(warehouse, baseline):
    from ml.stages.gates import gate_raw

    _tamper(warehouse,
            "update raw.orders set amount = -5 where order_id in (select order_id from raw.orders order by order_id limit 3)",
            "update raw.customers set email_hash = 'alice@example.com' where customer_id = (select min(customer_id) from raw.customers)")
    message = _fails(gate_raw, _settings(warehouse))
    first = message.splitlines()[0]
    assert first.startswith("quality gate 'raw_layer' failed: ") and "Data Docs: file://" in first
    assert "raw_orders: expect_column_values_to_be_between(column=amount" in message
    assert "3 of" in message and "order_id=" in message  # the offending rows, by key
    assert "raw_customers: expect_column_values_to_match_regex(column=email_hash" in message
    assert fingerprint(warehouse) == baseline.published


def test_raw_gate_checks_the_ingest_log_reconciles(warehouse):
    from ml.stages.gates import gate_raw

    _tamper(warehouse, "delete from raw.orders where order_id in (select order_id from raw.orders limit 2)")
    assert "raw_orders: expect_table_row_count_to_equal" in _fails(gate_raw, _settings(warehouse))


def test_raw_gate_on_a_sample_for_large_tables(warehouse):
    from ml.stages.gates import gate_raw

    result = gate_raw(_settings(warehouse, quality_max_rows=1000))
    assert result.success


# ---- customer_features ----------------------------------------------------------------------------


def test_feature_gate_passes_and_learns_bounds_from_the_good_run(warehouse):
    from ml.stages.gates import gate_features, load_baseline

    learnt_by_good_run = load_baseline(_settings(warehouse))
    assert learnt_by_good_run["amount_365d"]["mean"] > 0
    result = gate_features(_settings(warehouse))
    assert result.success
    rows = pipeline_query(warehouse, "select count(*), min(as_of_date), max(as_of_date) from quality.feature_baselines")[0]
    assert rows[0] > 10 and rows[1] == rows[2] == END_DATE


def test_feature_gate_stops_a_shift_in_distribution(warehouse, baseline):
    """Spend suddenly 100x (amounts exported in cents): every value is valid, the mean is not."""
    from ml.stages.gates import gate_features

    _tamper(warehouse, "update marts.customer_features set amount_365d = amount_365d * 100 where as_of_date = date '2025-12-31'")
    message = _fails(gate_features, _settings(warehouse))
    assert "customer_features: expect_column_mean_to_be_between(column=amount_365d" in message
    # a failed gate teaches nothing: the bounds stay those of the last good run
    mean = pipeline_query(warehouse, "select mean from quality.feature_baselines where column_name = 'amount_365d'")[0][0]
    assert mean < 100_000
    assert fingerprint(warehouse) == baseline.published


def test_feature_gate_names_duplicates_and_nulls_with_sample_rows(warehouse):
    from ml.stages.gates import gate_features

    _tamper(warehouse,
            "insert into marts.customer_features select * from marts.customer_features "
            "where as_of_date = date '2025-12-31' order by customer_id limit 2",
            "update marts.customer_features set days_since_last_order = null where customer_id = "
            "(select max(customer_id) from marts.customer_features)")
    message = _fails(gate_features, _settings(warehouse, feature_drift_sd=0))
    assert "expect_column_values_to_be_unique(column=customer_id) — 4 of" in message
    assert "customer_id=" in message
    assert "expect_column_values_to_not_be_null(column=days_since_last_order) — 1 of" in message


def test_feature_gate_checks_freshness(warehouse):
    from ml.stages.gates import gate_features

    _tamper(warehouse, "update marts.customer_features set days_since_last_order = days_since_last_order + 60, "
                       "days_since_first_order = days_since_first_order + 60 where as_of_date = date '2025-12-31'")
    message = _fails(gate_features, _settings(warehouse, feature_drift_sd=0))
    assert "expect_column_min_to_be_between(column=days_since_last_order" in message


# ---- scores -------------------------------------------------------------------------------------------


def test_score_gate_passes_on_the_good_run(warehouse):
    from ml.stages.gates import gate_scores

    assert gate_scores(_settings(warehouse)).success


@pytest.mark.parametrize("breakage, expectation", [
    ("delete from scoring.churn_scores where customer_id in (select customer_id from scoring.churn_scores limit 5)",
     "expect_table_row_count_to_equal"),
    ("update scoring.churn_scores set churn_probability = 1.5 where customer_id = (select min(customer_id) from scoring.churn_scores)",
     "expect_column_values_to_be_between(column=churn_probability"),
    ("update scoring.churn_scores set risk_tier = null where customer_id = (select min(customer_id) from scoring.churn_scores)",
     "expect_column_values_to_not_be_null(column=risk_tier)"),
])
def test_score_gate_failures(warehouse, baseline, breakage, expectation):
    from ml.stages.gates import gate_scores

    _tamper(warehouse, breakage)
    message = _fails(gate_scores, _settings(warehouse))
    assert f"churn_scores: {expectation}" in message
    if "row_count" not in expectation:
        assert "customer_id=" in message  # a sample offending row
    assert fingerprint(warehouse) == baseline.published
