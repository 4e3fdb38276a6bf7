"""Model benchmark: the churn model against the generator's truth and three baselines, per tier.

    python benchmarks/bench_model.py --tier S      # 10k customers → results/model-S.json
    python benchmarks/bench_model.py --tier M      # 1M customers  → results/model-M.json

Setup (child process, not timed, kept in --workdir for --reuse): generate a shop whose truth date
is the backtest cutoff (the latest cutoff on the dbt grid whose label window ends by the as-of
date), ingest it and build the features with ``--cutoffs`` training cutoffs.

Timed, in this process: ``ml.stages.train.train`` exactly as the pipeline calls it (search, backtest,
production refit, baselines, plots, model card, MLflow logging, registry and gate). Then one bare
``lightgbm.train`` of the production matrix with the chosen settings and tree count, as a yardstick.

Reported: test-cutoff AUC, the AUC of the generator's true probabilities on the same customers
(``oracle_auc``) and their ratio, ECE, Brier, each baseline's AUC, the value forecast's error,
train wall and CPU time, peak RSS, and the pipeline's overhead: everything ``train`` does outside
``lightgbm.train`` (loading, matrices, calibration, baselines, evaluation, plots, logging,
registering) relative to the time inside it. CPU seconds are reported beside wall seconds because
the machine is shared and wall time inflates with other people's jobs.
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
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _report as report  # noqa: E402

TIERS = {"S": 10_000, "M": 1_000_000, "L": 10_000_000}
END = dt.date(2025, 12, 31)
HORIZON = 90
TARGETS = {"oracle_ratio": 0.97, "ece": 0.02, "overhead_ratio": 0.30}


def backtest_cutoff(as_of: dt.date, horizon: int) -> dt.date:
    """The latest grid cutoff whose label window ends by ``as_of`` (the run context's rule)."""
    from ml.core import context
    from ml.core.settings import Settings

    return context.backtest_cutoff(Settings(as_of=as_of, horizon_days=horizon))


def prepare(workdir: str, customers: int, seed: int, cutoffs: int) -> dict:
    """Generate (truth at the backtest cutoff), ingest and build features; runs in a child process."""
    from ml.stages.ingest import ingest
    from ml.core.settings import Settings
    from ml.synth import generate
    from ml.stages.features import build_features

    started = time.perf_counter()
    raw, warehouse = Path(workdir) / "raw", Path(workdir) / "warehouse"
    generate(raw, customers=customers, seed=seed, end_date=END,
             truth_as_of=backtest_cutoff(END, HORIZON), horizon_days=HORIZON)
    settings = Settings.load(warehouse=warehouse, raw_dir=raw, as_of=END, horizon_days=HORIZON,
                             n_training_cutoffs=cutoffs)
    ingest(settings)
    built = build_features(settings)
    return {"prepare_s": round(time.perf_counter() - started, 1), "rows": built["rows"],
            "training_cutoffs": built["training_cutoffs"]}


def _in_child(fn, *args):
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def bare_fit(settings, params: dict, rounds: int) -> dict:
    """One plain lightgbm.train on the production booster's matrix (the rows it was fitted on), timed alone."""
    import lightgbm as lgb
    import numpy as np

    from ml.stages.train.examples import read_examples

    data = read_examples(settings)
    rows = data.rows(data.split.full) & data.fitted()
    X, y, categorical = data.X[rows], data.y[rows], data.spec.categorical_indices
    del data
    ds = lgb.Dataset(X, y.astype(float), categorical_feature=categorical,
                     params={"verbose": -1, "num_threads": settings.train_threads})
    started, cpu = time.perf_counter(), time.process_time()
    lgb.train(params, ds, rounds)
    return {"bare_fit_s": round(time.perf_counter() - started, 2), "bare_fit_cpu_s": round(time.process_time() - cpu, 2),
            "bare_fit_rows": int(len(y)), "bare_fit_features": int(X.shape[1]),
            "bare_fit_matrix_mb": round(X.nbytes / 2**20, 1), "bare_fit_positive_share": round(float(np.mean(y)), 4)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", choices=sorted(TIERS), default="S")
    parser.add_argument("--customers", type=int, help="override the tier's customer count")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--cutoffs", type=int, default=16, help="training cutoffs (16: 15 months, a full season)")
    parser.add_argument("--trials", type=int, default=None, help="search trials (default: settings)")
    parser.add_argument("--max-rows", type=int, default=None, help="train_max_rows (default: settings)")
    parser.add_argument("--search-max-rows", type=int, default=None, help="train_search_max_rows (default: settings)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/churnwatch-bench-model"))
    parser.add_argument("--reuse", action="store_true", help="reuse the prepared shop and features in --workdir")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("CHURNWATCH_PII_SALT", "bench-only-salt")

    import pandas as pd

    from ml.model.metrics import auc
    from ml.core.settings import Settings
    from ml.stages.train import train

    customers = args.customers or TIERS[args.tier]
    workdir = args.workdir / f"{args.tier}-{customers}-{args.seed}-{args.cutoffs}"
    marker = workdir / "prepared.json"
    if args.reuse and marker.exists():
        prepared = json.loads(marker.read_text())
        print(f"reusing {workdir}", flush=True)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        print(f"preparing tier {args.tier}: {customers:,} customers, {args.cutoffs} cutoffs …", flush=True)
        prepared = _in_child(prepare, str(workdir), customers, args.seed, args.cutoffs)
        marker.write_text(json.dumps(prepared))
    shutil.rmtree(workdir / "warehouse" / "mlflow", ignore_errors=True)  # a fresh registry each run

    overrides = {"warehouse": workdir / "warehouse", "as_of": END, "horizon_days": HORIZON,
                 "n_training_cutoffs": args.cutoffs, "retrain": True}
    if args.trials is not None:
        overrides["train_search_trials"] = args.trials
    if args.max_rows is not None:
        overrides["train_max_rows"] = args.max_rows
    if args.search_max_rows is not None:
        overrides["train_search_max_rows"] = args.search_max_rows
    settings = Settings.load(**overrides)
    # the registry's SQLite database and experiment are created once, untimed, as on any machine
    # that has trained before (a fresh database costs its schema migrations, ~2-4 s, once)
    from ml.core import registry

    registry.configure(settings)
    load_before = os.getloadavg()
    print("training …", flush=True)
    started, cpu = time.perf_counter(), time.process_time()
    result = train(settings)
    train_s, train_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    peak = peak_rss_mb()
    load_after = os.getloadavg()

    # the oracle: the generator's true probabilities for the same test-cutoff customers
    truth = pd.read_parquet(workdir / "raw" / "_truth" / "churn_truth.parquet")
    test_cutoff = str(backtest_cutoff(END, HORIZON))
    if str(truth["truth_as_of"].iloc[0])[:10] != test_cutoff:
        raise SystemExit(f"truth date {truth['truth_as_of'].iloc[0]} is not the backtest cutoff {test_cutoff}")
    both = result.backtest.merge(truth[["customer_id", "true_churn_probability"]], on="customer_id")
    model_auc = auc(both["is_churned"], both["churn_probability"])
    oracle_auc = auc(both["is_churned"], both["true_churn_probability"])

    run = registry.configure(settings).get_run(result.run_id)
    metrics, params = run.data.metrics, run.data.params
    lgbm_params = {k: _typed(v) for k, v in params.items() if k in _LGBM_KEYS}
    bare = bare_fit(settings, {**lgbm_params, "verbose": -1, "num_threads": settings.train_threads},
                    int(params["num_iteration"]))

    t = result.timings
    overhead_s = train_s - t["lightgbm_fit"]
    overhead_cpu_s = train_cpu_s - t["lightgbm_fit_cpu"]
    out = {
        "tier": args.tier,
        "customers": customers,
        "seed": args.seed,
        "training_cutoffs": args.cutoffs,
        "test_cutoff": test_cutoff,
        "test_customers": int(metrics["test_rows"]),
        "test_customers_with_truth": int(len(both)),
        "auc": round(metrics["test_auc"], 4),
        "auc_on_truth_customers": round(model_auc, 4),
        "oracle_auc": round(oracle_auc, 4),
        "oracle_ratio": round(model_auc / oracle_auc, 4),
        "ece": round(metrics["test_ece"], 4),
        "brier": round(metrics["test_brier"], 4),
        "pr_auc": round(metrics["test_pr_auc"], 4),
        "lift_at_10pct": round(metrics["test_lift_at_10pct"], 3),
        "recall_at_20pct": round(metrics["test_recall_at_20pct"], 3),
        **{k: round(v, 4) for k, v in sorted(metrics.items()) if k.startswith("baseline_") and k.endswith("_auc")},
        **{k: round(v, 4) for k, v in sorted(metrics.items()) if k.startswith("value_")},
        "cv_auc": round(metrics["cv_auc"], 4),
        "production_cv_auc": round(metrics.get("production_cv_auc", float("nan")), 4),
        "chosen": {**lgbm_params, "num_iteration": int(params["num_iteration"]),
                   "calibration": params["calibration"], "search_trials": int(params["search_trials"])},
        "trees": int(params["num_iteration"]),
        "max_leaves_per_tree": int(lgbm_params.get("num_leaves", 31)),
        "backtest_origins": {k.split("/")[1]: round(v, 4) for k, v in sorted(metrics.items())
                             if k.startswith("origin/") and k.endswith("/auc")},
        "backtest_ece_max": round(metrics.get("backtest_ece_max", float("nan")), 4),
        "sampling": {"train_max_rows": settings.train_max_rows, "train_search_max_rows": settings.train_search_max_rows,
                     "train_calibration_max_rows": settings.train_calibration_max_rows},
        "rows": {"fit_backtest": int(metrics.get("fit_rows_backtest", 0)),
                 "fit_production": int(metrics.get("fit_rows_production", 0)),
                 "search": int(metrics.get("search_rows", 0)),
                 "calibration": int(metrics.get("calibration_rows", 0)),
                 "read": int(metrics.get("rows_read", 0)), "total": int(metrics.get("rows_total", 0))},
        "evaluation": {"test_cutoff_customers": int(metrics["test_rows"]),
                       "origin_scored_rows": {k.split("/")[1]: int(v) for k, v in sorted(metrics.items())
                                              if k.startswith("origin/") and k.endswith("/scored_rows")},
                       "note": "model AUC/ECE/Brier and all baselines on every test-cutoff customer; each earlier "
                               "rolling origin on a stable whole-customer sample (ml.stages.train.examples.ORIGIN_SCORE_ROWS) when "
                               "the data exceed train_max_rows; baselines fitted on the fit sample's honest rows"},
        "train_wall_s": round(train_s, 1),
        "train_cpu_s": round(train_cpu_s, 1),
        "registry_created_before_timing": True,  # a fresh MLflow database, then the timed train()
        "peak_rss_mb": peak,
        "lightgbm_fit_s": round(t["lightgbm_fit"], 1),
        "lightgbm_fit_cpu_s": round(t["lightgbm_fit_cpu"], 1),
        "lightgbm_fits": int(t["lightgbm_fits"]),
        "overhead_s": round(overhead_s, 1),
        "overhead_ratio": round(overhead_s / t["lightgbm_fit"], 3),
        "overhead_ratio_cpu": round(overhead_cpu_s / t["lightgbm_fit_cpu"], 3),
        "phases_s": {k: round(v, 1) for k, v in t.items() if not k.startswith("lightgbm") and k != "total_cpu"},
        **bare,
        "targets": {
            "oracle_ratio_ge_0.97": model_auc / oracle_auc >= TARGETS["oracle_ratio"],
            "ece_le_0.02": metrics["test_ece"] <= TARGETS["ece"],
            "beats_all_baselines": all(metrics["test_auc"] > v for k, v in metrics.items()
                                       if k.startswith("baseline_") and k.endswith("_auc")),
            "overhead_le_30pct": overhead_s / t["lightgbm_fit"] <= TARGETS["overhead_ratio"],
        },
        "prepare": prepared,
        "machine": report.machine(load_before, load_after),
        "measured_at": report.measured_at(),
    }
    path = args.out or REPO / "benchmarks" / "results" / f"model-{args.tier}.json"
    report.write(path, out)
    print(json.dumps({k: out[k] for k in ("auc", "oracle_auc", "oracle_ratio", "ece", "brier", "train_wall_s",
                                          "peak_rss_mb", "overhead_ratio", "targets")}, indent=2))
    return out


_LGBM_KEYS = ("objective", "metric", "learning_rate", "num_leaves", "min_data_in_leaf", "feature_fraction",
              "bagging_fraction", "bagging_freq", "lambda_l2", "cat_smooth", "min_data_per_group",
              "max_cat_to_onehot", "deterministic", "force_row_wise", "seed", "scale_pos_weight")


def _typed(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(value, value)


if __name__ == "__main__":
    main()
