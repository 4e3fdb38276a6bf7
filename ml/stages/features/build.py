"""Features: build the point-in-time feature layer with dbt, rebuilding what changed, testing what is new."""
from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

from ml.core.dbt import FEATURES_SELECT, INCREMENTAL_LOOKBACK_DAYS, dbt_vars, run_dbt
from ml.core.settings import Settings

FEATURE_MARTS = ("customer_features", "training_examples")
# the daily intermediate tables and their date columns: rows up to a run's tested-through
# date are never rewritten by a later run, so later runs test only the rows after it
DAILY_TABLES = {
    "int_orders_joined_to_items": "order_date",
    "int_order_items_aggregated_to_customer_products": "first_purchased_date",
    "int_orders_aggregated_to_customer_days": "order_date",
    "int_events_aggregated_to_sessions": "session_date",
}
TESTED_MARKER = "features_tested.json"

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
    from ``rebuilt_from`` on (a re-export changed them, see ``ml.stages.features.rebuild``) are tested again,
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
    days, or the feature SQL changed), ``ml.stages.features.rebuild`` first deletes what depends on them, or
    asks for a full refresh, and logs one line saying what and why; after a successful build
    it records the inputs. Returns row counts, timings and that line (``rebuilt``).
    """
    import duckdb

    from ml.stages.features import rebuild

    plan = rebuild.prepare(settings, full_refresh)
    full_refresh = full_refresh or plan.full_refresh
    tested = _tested_vars(settings, full_refresh, plan.rebuilt_from)
    command = ["build", "--select", *FEATURES_SELECT,
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
