"""Shared session fixtures (a generated tier-S shop and one full pipeline run through Airflow), and
the layer markers: every test is marked by its folder (unit, synth, dbt, quality, pipeline, airflow).

The expensive things (generating a shop, running the DAG) happen once per session and are
shared read-only; tests that mutate state make their own warehouse. Plain helpers live in
``tests/helpers``; fixtures used by one folder live in that folder's conftest.py.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.run import END_DATE, HORIZON, QUICK_TRAINING, TIER_S, backtest_cutoff, churnwatch

os.environ.setdefault("CHURNWATCH_PII_SALT", "test-only-salt")

TESTS = Path(__file__).resolve().parent
LAYERS = ("unit", "synth", "dbt", "quality", "pipeline", "airflow")  # folders = markers (pyproject.toml)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its folder, so `-m unit` and `tests/unit` select the same tests."""
    for item in items:
        parts = item.path.resolve().relative_to(TESTS).parts
        if len(parts) > 1 and parts[0] in LAYERS:
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.fixture(scope="session")
def shop_s(tmp_path_factory) -> Path:
    """A tier-S synthetic shop (10k customers) with truth at the backtest cutoff."""
    from ml.synth import generate

    out = tmp_path_factory.mktemp("shop_s")
    generate(out, customers=TIER_S, seed=11, end_date=END_DATE,
             truth_as_of=backtest_cutoff(END_DATE), horizon_days=HORIZON)
    return out


@pytest.fixture(scope="session")
def pipeline_s(shop_s, tmp_path_factory) -> Path:
    """One full `churnwatch run` (through the Airflow DAG) on the tier-S shop; returns the warehouse.

    Every test that only reads a pipeline's output reads this one (copying it before it writes).
    Its model is trained quickly (``QUICK_TRAINING``): the tests judging the model train their own."""
    warehouse = tmp_path_factory.mktemp("warehouse_s")
    proc = churnwatch("run", "--raw-dir", str(shop_s), "--warehouse", str(warehouse),
                      "--as-of", END_DATE.isoformat(), "--horizon-days", str(HORIZON), "--retrain",
                      env=QUICK_TRAINING)
    # what the user saw, for tests/pipeline/test_run_output.py (the run's own log is beside it)
    (warehouse / "logs").mkdir(exist_ok=True)
    (warehouse / "logs" / "churnwatch-run.out").write_text(proc.stdout + proc.stderr)
    return warehouse
