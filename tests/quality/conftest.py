"""Session fixtures for the data-quality tests (every module in tests/quality shares them).

The shop is generated (never committed) as CSV, so tests can corrupt it as text the way real
exports break. One full ``churnwatch run`` publishes from it; every broken case then runs on a
copy of that warehouse and compares the published bytes with the good run's.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers.run import churnwatch
from helpers.quality import CUSTOMERS, END_DATE, HORIZON, SEED, Baseline, fingerprint, run_env


@pytest.fixture(scope="session")
def quality_shop(tmp_path_factory) -> Path:
    from ml.synth import generate

    out = tmp_path_factory.mktemp("quality_shop")
    generate(out, customers=CUSTOMERS, seed=SEED, end_date=END_DATE, fmt="csv")
    return out


@pytest.fixture(scope="session")
def baseline(quality_shop, tmp_path_factory) -> Baseline:
    """One good `churnwatch run` (through Airflow) on the small shop, published."""
    warehouse = tmp_path_factory.mktemp("quality_baseline")
    airflow_home = tmp_path_factory.mktemp("quality_airflow")
    baseline = Baseline(quality_shop, warehouse, {}, airflow_home)
    churnwatch("run", "--raw-dir", str(quality_shop), "--warehouse", str(warehouse), "--as-of", END_DATE.isoformat(),
               "--horizon-days", str(HORIZON), "--retrain", env=run_env(baseline))
    published = fingerprint(warehouse)
    assert "analytics.duckdb" in published and any(k.startswith("published/") for k in published)
    return Baseline(quality_shop, warehouse, published, airflow_home)
