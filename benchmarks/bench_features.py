"""Benchmark the dbt feature layer: full build, scan floor, daily incremental build, memory.

    python benchmarks/bench_features.py --tier M

1. prepare (child process, so its memory does not count): a shop of the tier's size from
   ``ml.synth.generate`` (or the SQL generator of tests/helpers/raw_tables.py with
   ``--generator sql``), loaded into raw.* with read_parquet; the last day is held back.
   The generated files are kept under --workdir and reused by a later run of the same size
   and seed; the warehouse is always rebuilt.
2. scan floor: one DuckDB aggregate pass over orders and events (group by customer, a few sums).
3. feature build: ``ml.stages.features.build_features`` at as_of = end - 1 day, from scratch
   (features for the scoring cutoff and every training cutoff, dbt tests included).
4. incremental build: the held-back day is added and as_of moves to the end date.

Writes benchmarks/results/features-<tier>.json. Targets: feature_build_s <= 4 x scan_floor_s,
incremental_build_s <= 0.25 x feature_build_s, peak RSS <= 6 GB.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import resource
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _report as report  # noqa: E402

TIERS = {"S": 10_000, "M": 1_000_000, "L": 10_000_000}
END = dt.date(2025, 12, 31)
HELD_BACK = END  # the day added before the incremental run


def prepare(db_path: str, customers: int, seed: int, generator: str, raw_dir: str) -> dict:
    """Generate the shop, load raw.*, move the last day into hold.* (runs in a child process)."""
    import duckdb

    from helpers.raw_tables import TS_COLUMNS, generate_shop, load_synth_dir, synth_available

    con = duckdb.connect(db_path)
    con.execute("set memory_limit = '12GB'")
    started = time.perf_counter()
    if generator == "synth" or (generator == "auto" and synth_available()):
        from ml.synth import generate

        # the generated shop is kept between runs (the warehouse is not): same size and seed,
        # same files; generating tier M takes minutes
        shop = {"customers": customers, "seed": seed, "end_date": str(END)}
        marker = Path(raw_dir) / "_shop.json"
        reused = marker.exists() and json.loads(marker.read_text()) == shop
        if not reused:
            shutil.rmtree(raw_dir, ignore_errors=True)
            generate(Path(raw_dir), customers=customers, seed=seed, end_date=END, fmt="parquet")
            marker.write_text(json.dumps(shop))
        load_synth_dir(con, Path(raw_dir))
        used = "ml.synth (shop files reused)" if reused else "ml.synth"
    else:
        generate_shop(con, customers=customers, seed=seed, end_date=END)
        used = "helpers.raw_tables.generate_shop"
    con.execute("create schema if not exists hold")
    for name, column in TS_COLUMNS.items():
        bound = f"timestamp '{HELD_BACK}'"
        con.execute(f"create or replace table hold.{name} as select * from raw.{name} where {column} >= {bound}")
        con.execute(f"delete from raw.{name} where {column} >= {bound}")
    con.execute("create or replace table hold.order_items as select * from raw.order_items "
                "where order_id in (select order_id from hold.orders)")
    con.execute("delete from raw.order_items where order_id in (select order_id from hold.orders)")
    counts = {name: con.execute(f"select count(*) from raw.{name}").fetchone()[0]
              for name in ("orders", "customers", "order_items", "events", "reviews",
                           "support_tickets", "campaign_contacts")}
    con.execute("checkpoint")
    con.close()
    return {"generator": used, "generate_and_load_s": round(time.perf_counter() - started, 1), "raw_rows": counts}


def _prepare_in_child(*args) -> dict:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(prepare, args)


FLOOR_QUERIES = [
    "select customer_id, count(*), sum(amount), max(order_ts) from {raw}.orders group by 1",
    "select customer_id, count(*), count(*) filter (where event_type = 'view'), max(event_ts) "
    "from {raw}.events group by 1",
]


def floor_pass(con, raw: str = "raw") -> float:
    """One aggregate pass over orders and events, results fetched: the least any feature
    build has to do. ``raw``: the schema of the raw tables on this connection."""
    started = time.perf_counter()
    for query in FLOOR_QUERIES:
        con.execute(query.format(raw=raw)).fetchall()
    return time.perf_counter() - started


def scan_floor(settings) -> float:
    """floor_pass on a fresh read-only connection to the warehouse."""
    import duckdb

    con = duckdb.connect(str(settings.db_path), read_only=True)
    con.execute(f"set memory_limit = '{settings.duckdb_memory_limit}'")
    con.execute(f"set threads = {settings.duckdb_threads}")
    seconds = floor_pass(con)
    con.close()
    return seconds


def add_held_back_day(settings) -> None:
    import duckdb

    from helpers.raw_tables import TS_COLUMNS

    con = duckdb.connect(str(settings.db_path))
    for name in [*TS_COLUMNS, "order_items"]:
        con.execute(f"insert into raw.{name} select * from hold.{name}")
    con.close()


def cpu_seconds() -> float:
    """CPU time of this process (all DuckDB threads): a fair measure on a shared, busy machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", choices=sorted(TIERS), default="S")
    parser.add_argument("--customers", type=int, help="override the tier's customer count")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--generator", choices=["auto", "synth", "sql"], default="auto")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/churnwatch-bench-features"))
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory limit (default: settings)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from ml.core.settings import Settings
    from ml.stages.features import build_features

    customers = args.customers or TIERS[args.tier]
    workdir = args.workdir / args.tier
    shutil.rmtree(workdir / "warehouse", ignore_errors=True)
    warehouse = workdir / "warehouse"
    warehouse.mkdir(parents=True)
    overrides = {"warehouse": warehouse, "as_of": END - dt.timedelta(days=1)}
    if args.memory_limit:
        overrides["duckdb_memory_limit"] = args.memory_limit
    if args.threads:
        overrides["duckdb_threads"] = args.threads
    settings = Settings.load(**overrides)

    print(f"preparing tier {args.tier}: {customers:,} customers …", flush=True)
    prepared = _prepare_in_child(str(settings.db_path), customers, args.seed, args.generator,
                                 str(workdir / "raw"))
    load_before = os.getloadavg()

    cpu = [cpu_seconds()]
    floor_s = scan_floor(settings)
    cpu.append(cpu_seconds())
    print(f"scan floor {floor_s:.1f}s; full feature build …", flush=True)
    full = build_features(settings, full_refresh=True)
    cpu.append(cpu_seconds())
    print(f"feature build {full['seconds']:.1f}s; incremental build …", flush=True)
    add_held_back_day(settings)
    cpu.append(cpu_seconds())
    incremental = build_features(settings.replace(as_of=END))
    cpu.append(cpu_seconds())
    load_after = os.getloadavg()
    floor_cpu, full_cpu, incremental_cpu = cpu[1] - cpu[0], cpu[2] - cpu[1], cpu[4] - cpu[3]

    result = {
        "tier": args.tier,
        "customers": customers,
        **prepared,
        "as_of_full": str(END - dt.timedelta(days=1)),
        "as_of_incremental": str(END),
        "scan_floor_s": round(floor_s, 2),
        "feature_build_s": full["seconds"],
        "incremental_build_s": incremental["seconds"],
        "peak_rss_mb": peak_rss_mb(),
        "ratio_build_to_floor": round(full["seconds"] / floor_s, 2),
        "ratio_incremental_to_build": round(incremental["seconds"] / full["seconds"], 3),
        # CPU seconds of the process: on a machine shared with other jobs, wall time inflates
        "cpu_s": {"scan_floor": round(floor_cpu, 2), "feature_build": round(full_cpu, 2),
                  "incremental_build": round(incremental_cpu, 2),
                  "ratio_build_to_floor": round(full_cpu / floor_cpu, 2),
                  "ratio_incremental_to_build": round(incremental_cpu / full_cpu, 3)},
        "targets": {
            "feature_build_le_4x_floor": full["seconds"] <= 4 * floor_s,
            "incremental_le_quarter_build": incremental["seconds"] <= 0.25 * full["seconds"],
            "peak_rss_le_6gb": peak_rss_mb() <= 6 * 1024,
        },
        # what each timed build does (issue 3: "full build of features for one as-of date plus
        # the training spine"; the training spine's rows carry the features at each training
        # cutoff, so a cold build computes those too)
        "builds": {
            "full": ("dbt build --full-refresh of +marts.features from raw.*: every daily "
                     "intermediate table over all history (orders, order items, events->sessions), "
                     "the per-customer lifetime order totals and latest session day, "
                     f"customer_features at the scoring cutoff and all {len(full['training_cutoffs'])} "
                     "training cutoffs, labels, training_examples, and the data tests"),
            "incremental": ("the held-back day added; dbt build (no full refresh): the new days of "
                            "the daily tables, the per-customer tables for the customers with new days, "
                            "customer_features at the new scoring cutoff only (lifetime totals and "
                            "latest session from the per-customer tables, windows from the last 365 "
                            "days; the grid training cutoffs are kept), data tests on what the run built"),
            "cutoffs_built": {"full": 1 + len(full["training_cutoffs"]), "incremental": 1},
        },
        "test_seconds": {"full": round(sum(full["test_seconds"].values()), 2),
                         "incremental": round(sum(incremental["test_seconds"].values()), 2)},
        "rows": {"full": full["rows"], "incremental": incremental["rows"]},
        "cutoffs": {"scoring": incremental["scoring_cutoff"], "training": incremental["training_cutoffs"]},
        "model_seconds": {"full": full["model_seconds"], "incremental": incremental["model_seconds"]},
        "duckdb": {"memory_limit": settings.duckdb_memory_limit, "threads": settings.duckdb_threads},
        "machine": report.machine(load_before, load_after),
        "measured_at": report.measured_at(),
    }
    out = args.out or REPO / "benchmarks" / "results" / f"features-{args.tier}.json"
    report.write(out, result)
    print(json.dumps({k: result[k] for k in ("scan_floor_s", "feature_build_s", "incremental_build_s",
                                              "peak_rss_mb", "cpu_s", "targets", "machine")}, indent=2))
    return result


if __name__ == "__main__":
    main()
