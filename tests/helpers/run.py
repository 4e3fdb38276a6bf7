"""What every layer of the tests shares: the repo, the session's as-of date and horizon, the CLI."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
END_DATE = dt.date(2025, 12, 31)
HORIZON = 90
TIER_S = 10_000
# CHURNWATCH_* settings for the runs whose model no test judges (a shared run read for its tables, a
# second horizon, orders-only input, the quality gates' good run): 8 training cutoffs and 2 search
# trials instead of the product's 16 and 6. The product defaults are what tests/pipeline/
# test_model_quality.py and test_calibration_realized.py measure.
QUICK_TRAINING = {"CHURNWATCH_N_TRAINING_CUTOFFS": "8", "CHURNWATCH_TRAIN_SEARCH_TRIALS": "2"}


def backtest_cutoff(as_of: dt.date, horizon: int = HORIZON) -> dt.date:
    """The latest full-label training cutoff, snapped to the cutoff grid (the run context's rule)."""
    from ml.core import context
    from ml.core.settings import Settings

    return context.backtest_cutoff(Settings(as_of=as_of, horizon_days=horizon))


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
