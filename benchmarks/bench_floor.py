"""How close can any feature build get to the scan floor? Hand-written SQL against the bar.

    python benchmarks/bench_features.py --tier M    # first: builds the warehouse this reads
    python benchmarks/bench_floor.py --tier M

Issue 3 asks for ``feature_build_s <= 4 x scan_floor_s``. This benchmark measures, in one run
on the warehouse bench_features.py left behind (raw tables read-only), what the best SQL we
could write by hand costs against the same floor:

- ``one_cutoff``: the features at the full build's as-of date alone plus the labelled spine:
  the least a build can do (training would still lack the features at its cutoffs);
- ``all_cutoffs``: what a cold full build must produce: features at the scoring cutoff and
  at every training cutoff (training_examples carries them) plus the labelled spine;
- ``dbt``: dbt's own fixed cost in a fresh process (import and a cold parse of the project),
  and a warm parse, which every dbt build pays on top of its SQL.

The hand-written SQL (benchmarks/handwritten/) keeps the pipeline's definitions and staging
clean-up; tests/dbt/test_dbt_features.py checks its rows equal the dbt mart's. It skips what
only the pipeline needs: dbt, data tests, state for the daily incremental run. The floor is
measured before and after every build (after an unreported warm-up run of one_cutoff, as the
first reads of the attached file come from disk); one_cutoff runs three times; ratios use
medians.

Writes benchmarks/results/floor-<tier>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

import _report as report  # noqa: E402
import handwritten_sql  # noqa: E402
from bench_features import END, TIERS, floor_pass  # noqa: E402

ONE_CUTOFF_RUNS = 3  # ~19 s each at tier M; all_cutoffs (~75 s) runs once


def dbt_fixed_cost(settings_overrides: dict) -> dict:
    """dbt in a fresh process: import + cold parse, then a warm (partial) parse."""
    from ml.core.settings import Settings
    from ml.core.dbt import dbt_vars, run_dbt

    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings.load(**settings_overrides, warehouse=Path(scratch))
        command = ["parse", "--vars", json.dumps(dbt_vars(settings))]
        started = time.perf_counter()
        run_dbt(settings, command)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        run_dbt(settings, command)
        warm = time.perf_counter() - started
    return {"import_and_cold_parse_s": round(cold, 2), "warm_parse_s": round(warm, 2)}


def _in_child(function, *args):
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", choices=sorted(TIERS), default="S")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/churnwatch-bench-features"),
                        help="bench_features.py's --workdir (its warehouse is read, not changed)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import duckdb

    from ml.core.settings import Settings

    warehouse_db = args.workdir / args.tier / "warehouse" / "churnwatch.duckdb"
    if not warehouse_db.exists():
        sys.exit(f"bench_floor: no warehouse at {warehouse_db}: run "
                 f"benchmarks/bench_features.py --tier {args.tier} first")
    settings = Settings.load(as_of=END - dt.timedelta(days=1))
    scratch_db = args.workdir / args.tier / "handwritten.duckdb"
    scratch_db.unlink(missing_ok=True)
    con = duckdb.connect(str(scratch_db))
    con.execute(f"set memory_limit = '{settings.duckdb_memory_limit}'")
    con.execute(f"set threads = {settings.duckdb_threads}")
    con.execute(f"attach '{warehouse_db}' as wh (read_only)")
    training = [str(d) for (d,) in con.execute(
        "select cutoff_date from wh.intermediate.int_cutoffs_enumerated "
        "where cutoff_role = 'training' order by 1").fetchall()]
    # the full build's scoring cutoff (bench_features builds at END - 1, then adds END)
    cutoffs = [*training, str(settings.as_of)]
    render = dict(raw="wh.raw", cutoffs=cutoffs, training_cutoffs=training,
                  horizon_days=settings.horizon_days)

    # warm-up, not reported: the first reads of the attached file come from disk
    handwritten_sql.run(con, handwritten_sql.render("one_cutoff", **render))
    load_before = os.getloadavg()
    floors, runs, rows = [floor_pass(con, "wh.raw")], {}, {}
    for name in [*["one_cutoff"] * ONE_CUTOFF_RUNS, "all_cutoffs"]:
        print(f"hand-written {name} …", flush=True)
        runs.setdefault(name, []).append(handwritten_sql.run(con, handwritten_sql.render(name, **render)))
        rows[name] = {table: con.execute(f"select count(*) from hand_{table}").fetchone()[0]
                      for table in ("features", "spine")}
        floors.append(floor_pass(con, "wh.raw"))
    con.close()
    scratch_db.unlink(missing_ok=True)
    dbt = _in_child(dbt_fixed_cost, {"as_of": settings.as_of})
    load_after = os.getloadavg()

    floor = statistics.median(floors)
    # the median run (by wall time) of each build, with every run's seconds beside it
    builds = {name: {**sorted(done, key=lambda r: r["seconds"])[len(done) // 2],
                     "runs_s": [r["seconds"] for r in done]}
              for name, done in runs.items()}
    pipeline_file = REPO / "benchmarks" / "results" / f"features-{args.tier}.json"
    pipeline = json.loads(pipeline_file.read_text()) if pipeline_file.exists() else {}
    result = {
        "tier": args.tier,
        "as_of": str(settings.as_of),
        "cutoffs": {"scoring": cutoffs[-1], "training": training},
        "scan_floor_s": {"median": round(floor, 2), "runs": [round(f, 2) for f in floors]},
        "handwritten": {
            name: {**build, "ratio_to_floor": round(build["seconds"] / floor, 2), "rows": rows[name]}
            for name, build in builds.items()
        },
        "dbt": dbt,
        "bar": {
            "four_times_floor_s": round(4 * floor, 2),
            "one_cutoff_over_bar": builds["one_cutoff"]["seconds"] > 4 * floor,
            "one_cutoff_plus_dbt_cold_parse_ratio": round(
                (builds["one_cutoff"]["seconds"] + dbt["import_and_cold_parse_s"]) / floor, 2),
            "all_cutoffs_over_bar": builds["all_cutoffs"]["seconds"] > 4 * floor,
        },
        # the dbt build measured by bench_features.py (an earlier run: its own floor)
        "pipeline": {key: pipeline.get(key) for key in
                     ("feature_build_s", "scan_floor_s", "ratio_build_to_floor", "measured_at")},
        "machine": report.machine(load_before, load_after),
        "measured_at": report.measured_at(),
    }
    out = args.out or REPO / "benchmarks" / "results" / f"floor-{args.tier}.json"
    report.write(out, result)
    print(json.dumps({k: result[k] for k in ("scan_floor_s", "dbt", "bar")}, indent=2))
    for name, build in result["handwritten"].items():
        print(f"{name}: {build['seconds']:.1f}s = {build['ratio_to_floor']}x floor")
    return result


if __name__ == "__main__":
    main()
