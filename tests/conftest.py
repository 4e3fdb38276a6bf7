"""Shared fixtures: a generated tier-S shop and one full pipeline run through Airflow.

The expensive things (generating a shop, running the DAG) happen once per session and are
shared read-only; tests that mutate state make their own warehouse.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
END_DATE = dt.date(2025, 12, 31)
HORIZON = 90
TIER_S = 10_000
CUTOFF_STEP = 30  # the dbt cutoff grid: every 30 days from 1970-01-01 (dbt var cutoff_grid_anchor)


def backtest_cutoff(as_of: dt.date, horizon: int = HORIZON, step: int = CUTOFF_STEP) -> dt.date:
    """The latest full-label training cutoff, snapped to the dbt cutoff grid."""
    latest = as_of - dt.timedelta(days=horizon)
    return latest - dt.timedelta(days=(latest - dt.date(1970, 1, 1)).days % step)

os.environ.setdefault("CHURNWATCH_PII_SALT", "test-only-salt")


def churnwatch(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real ``churnwatch`` command in a child process, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "ml.faces.cli", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"churnwatch {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


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
    """One full `churnwatch run` (through the Airflow DAG) on the tier-S shop; returns the warehouse."""
    warehouse = tmp_path_factory.mktemp("warehouse_s")
    proc = churnwatch("run", "--raw-dir", str(shop_s), "--warehouse", str(warehouse),
                      "--as-of", END_DATE.isoformat(), "--horizon-days", str(HORIZON), "--retrain")
    # what the user saw, for tests/test_run_output.py (the run's own log is beside it)
    (warehouse / "logs").mkdir(exist_ok=True)
    (warehouse / "logs" / "churnwatch-run.out").write_text(proc.stdout + proc.stderr)
    return warehouse
