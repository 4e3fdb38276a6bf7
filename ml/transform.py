"""Run the dbt project in-process: the point-in-time feature layer and any other dbt step.

dbt reads the DuckDB path, threads and memory limit from environment variables (see
dbt_project/profiles.yml); this module sets them from Settings for the duration of one
invocation, and keeps dbt's target/ and logs/ under the warehouse so that test warehouses
running side by side never share compiled state.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import time
from pathlib import Path
from typing import Iterator

from ml.settings import Settings

# the feature layer: marts/features and everything upstream of it (staging + intermediate)
FEATURE_SELECTOR = "+marts.features"
FEATURE_MARTS = ("customer_features", "training_examples")
# days the incremental daily models re-read before the newest day they hold (dbt var)
INCREMENTAL_LOOKBACK_DAYS = 2
# the daily intermediate tables and their date columns: rows up to a run's tested-through
# date are never rewritten by a later run, so later runs test only the rows after it
DAILY_TABLES = {
    "int_orders_joined_to_items": "order_date",
    "int_order_items_aggregated_to_customer_products": "first_purchased_date",
    "int_orders_aggregated_to_customer_days": "order_date",
    "int_events_aggregated_to_sessions": "session_date",
}
TESTED_MARKER = "features_tested.json"

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


def _dbt_env(settings: Settings) -> dict[str, str]:
    return {
        "CHURNWATCH_DB_PATH": str(settings.db_path),
        "CHURNWATCH_DUCKDB_THREADS": str(int(settings.duckdb_threads)),
        "CHURNWATCH_DUCKDB_MEMORY_LIMIT": str(settings.duckdb_memory_limit),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


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
    with _environment(_dbt_env(settings)):
        result = dbtRunner().invoke(args)
    if not result.success:
        raise RuntimeError(_failure_line(command, result))
    return result.result


def _node_timings(run_result, resource_type: str = "model") -> dict[str, float]:
    out = {}
    for node_result in getattr(run_result, "results", None) or []:
        node = getattr(node_result, "node", None)
        if node is not None and getattr(node, "resource_type", None) == resource_type:
            out[node.name] = round(float(getattr(node_result, "execution_time", 0.0) or 0.0), 3)
    return out


def _tested_vars(settings: Settings, full_refresh: bool, rebuilt_from: dt.date | None = None) -> dict:
    """dbt vars that scope the data tests to what this run builds.

    After a successful build, the feature layer's cutoffs and the newest rows of the daily
    tables are recorded beside the warehouse; rows at those cutoffs (append-only, never
    rewritten) and daily rows up to that date (re-read only after it) are not tested again.
    A full refresh, a missing record or a missing table tests everything; daily rows rebuilt
    from ``rebuilt_from`` on (a re-export changed them, see ``ml.rebuild``) are tested again,
    and so are rebuilt cutoffs (deleted before this runs, so no longer present).
    """
    marker = settings.warehouse / "dbt" / TESTED_MARKER
    if full_refresh or not marker.exists() or not settings.db_path.exists():
        return {}
    import duckdb

    recorded = json.loads(marker.read_text())
    con = duckdb.connect(str(settings.db_path), read_only=True)
    try:
        present = {str(r[0]) for r in con.execute(
            "select distinct as_of_date from marts.customer_features").fetchall()}
    except duckdb.Error:
        return {}
    finally:
        con.close()
    cutoffs = sorted(present & set(recorded.get("cutoffs", [])))
    through = recorded.get("through_date")
    if through and rebuilt_from is not None:
        through = min(dt.date.fromisoformat(through), rebuilt_from - dt.timedelta(days=1)).isoformat()
    out = {"tested_through_date": through} if through else {}
    if cutoffs:
        out["tested_cutoffs"] = ", ".join(f"date '{c}'" for c in cutoffs)
    return out


def _record_tested(settings: Settings, con) -> None:
    """Remember what this (successful) build tested: see ``_tested_vars``."""
    cutoffs = [str(r[0]) for r in con.execute(
        "select distinct as_of_date from marts.customer_features order by 1").fetchall()]
    newest = [con.execute(f"select max({column}) from intermediate.{table}").fetchone()[0]
              for table, column in DAILY_TABLES.items()]
    newest = [d for d in newest if d is not None]
    through = (min(newest) - dt.timedelta(days=INCREMENTAL_LOOKBACK_DAYS)) if newest else None
    marker = settings.warehouse / "dbt" / TESTED_MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"cutoffs": cutoffs,
                                  "through_date": through.isoformat() if through else None}) + "\n")


def build_features(settings: Settings, full_refresh: bool = False) -> dict:
    """``dbt build`` the feature layer (staging, intermediate, marts/features) with its tests.

    Incremental by default: cutoffs already in the marts are kept and only new days of
    activity are aggregated; data tests check what this run built (see ``_tested_vars``).
    When the inputs of built cutoffs changed since they were built (a re-export rewrote past
    days, or the feature SQL changed), ``ml.rebuild`` first deletes what depends on them, or
    asks for a full refresh, and logs one line saying what and why; after a successful build
    it records the inputs. Returns row counts, timings and that line (``rebuilt``).
    """
    import duckdb

    from ml import rebuild

    plan = rebuild.prepare(settings, full_refresh)
    full_refresh = full_refresh or plan.full_refresh
    tested = _tested_vars(settings, full_refresh, plan.rebuilt_from)
    command = ["build", "--select", FEATURE_SELECTOR,
               "--vars", json.dumps({**dbt_vars(settings), **tested})]
    if full_refresh:
        command.append("--full-refresh")
    started = time.perf_counter()
    run_result = run_dbt(settings, command)
    seconds = time.perf_counter() - started

    con = duckdb.connect(str(settings.db_path), read_only=True)
    try:
        rows = {
            name: con.execute(f"select count(*) from marts.{name}").fetchone()[0]
            for name in FEATURE_MARTS
        }
        cutoffs = con.execute(
            "select cutoff_role, cast(cutoff_date as varchar) from intermediate.int_cutoffs_enumerated "
            "order by cutoff_date desc"
        ).fetchall()
        _record_tested(settings, con)
    finally:
        con.close()
    rebuild.record(settings)
    return {
        "seconds": round(seconds, 3),
        "rows": rows,
        "scoring_cutoff": next((d for role, d in cutoffs if role == "scoring"), None),
        "training_cutoffs": [d for role, d in cutoffs if role == "training"],
        "model_seconds": _node_timings(run_result),
        "test_seconds": _node_timings(run_result, "test"),
        "full_refresh": full_refresh,
        "rebuilt": plan.line,
    }
