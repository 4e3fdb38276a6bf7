"""Run dbt in-process against the pipeline's DuckDB: the one door every stage uses to dbt.

dbt reads the DuckDB path, threads and memory limit from environment variables (see
dbt_project/profiles.yml) and the run's dates and knobs from vars; both come from the run's
Settings here (``dbt_env``, ``dbt_vars``), for this module's in-process invocations and for the
Cosmos tasks alike. dbt's target/ and logs/ stay under the warehouse so that test warehouses
running side by side never share compiled state. The selectors of the two dbt layers are defined
here once, for ``dbt build`` in one step and for the Cosmos task groups.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Iterator

from ml.core import defaults
from ml.core.settings import Settings

# days the incremental daily models re-read before the newest day they hold (dbt var)
INCREMENTAL_LOOKBACK_DAYS = int(defaults.var("incremental_lookback_days"))
# the two dbt layers a run builds, in dbt's selector syntax (Cosmos renders the same ones):
# staging, intermediate and the feature marts; then the seeds and the crm and analytics marts
FEATURES_SELECT = ("+path:models/marts/features",)
MARTS_SELECT = ("path:seeds", "path:models/marts/crm", "path:models/marts/analytics")

_ENV_LOCK = threading.Lock()  # dbt reads os.environ; one in-process invocation at a time


def dbt_vars(settings: Settings) -> dict:
    """The dbt vars that carry the run's dates and cutoff spacing."""
    out = {
        "horizon_days": int(settings.horizon_days),
        "cutoff_step_days": int(settings.cutoff_step_days),
        "n_training_cutoffs": int(settings.n_training_cutoffs),
        "incremental_lookback_days": INCREMENTAL_LOOKBACK_DAYS,
    }
    if settings.as_of is not None:
        out["as_of_date"] = settings.as_of.isoformat()
    return out


def dbt_env(settings: Settings) -> dict[str, str]:
    """The environment dbt_project/profiles.yml reads (DuckDB file, threads, memory)."""
    return {
        "CHURNWATCH_DB_PATH": str(settings.db_path),
        "CHURNWATCH_DUCKDB_THREADS": str(int(settings.duckdb_threads)),
        "CHURNWATCH_DUCKDB_MEMORY_LIMIT": str(settings.duckdb_memory_limit),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


DBT_ENV_KEYS = ("CHURNWATCH_DB_PATH", "CHURNWATCH_DUCKDB_THREADS", "CHURNWATCH_DUCKDB_MEMORY_LIMIT")  # profiles.yml reads


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _dbt_dirs(settings: Settings) -> tuple[Path, Path]:
    base = settings.warehouse / "dbt"
    return base / "target", base / "logs"


def _failure_line(command: list[str], result) -> str:
    """One line naming the first failed node and its message."""
    verb = " ".join(command[:1]) or "dbt"
    if result.exception is not None:
        return f"dbt {verb} failed: {type(result.exception).__name__}: {result.exception}".replace("\n", " ")
    for node_result in getattr(result.result, "results", None) or []:
        status = str(getattr(node_result, "status", "")).lower()
        if status in ("error", "fail", "runtime error", "runtimeerror"):
            node = getattr(node_result, "node", None)
            name = getattr(node, "unique_id", None) or getattr(node, "name", "?")
            message = " ".join(str(getattr(node_result, "message", "") or "").split())
            return f"dbt {verb} failed at {name}: {message[:500]}"
    return f"dbt {verb} failed"


def run_dbt(settings: Settings, command: list[str]) -> object:
    """Run one dbt command (e.g. ``["build", "--select", "marts.features"]``) in-process.

    Raises RuntimeError with one line naming the failed node when dbt does not succeed;
    returns dbt's result object otherwise.
    """
    from dbt.cli.main import dbtRunner  # heavy import: only when dbt actually runs

    target_path, log_path = _dbt_dirs(settings)
    settings.warehouse.mkdir(parents=True, exist_ok=True)
    args = [
        *command,
        "--project-dir", str(settings.dbt_project_dir),
        "--profiles-dir", str(settings.dbt_project_dir),
        "--target-path", str(target_path),
        "--log-path", str(log_path),
    ]
    if "--vars" not in command:
        args += ["--vars", json.dumps(dbt_vars(settings))]
    with _environment(dbt_env(settings)):
        result = dbtRunner().invoke(args)
    if not result.success:
        raise RuntimeError(_failure_line(command, result))
    return result.result
