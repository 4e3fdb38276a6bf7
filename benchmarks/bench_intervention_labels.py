"""Labels that know about interventions (issue 19 item 5): train with and without the examples
treated inside their label window, judge both on the untreated customers of the test cutoff.

    python benchmarks/bench_intervention_labels.py --tier S            # 10k shops, seeds 7 and 11
    python benchmarks/bench_intervention_labels.py --cases 10000:7     # some cases

The churn model is meant to estimate the risk if the shop does nothing. A training example whose
customer was contacted (not held out) between its cutoff and the end of its label window carries
a label the contact changed (``marts.training_examples.is_treated_in_label_window``). Per case a
generated shop (two years to 2025-12-31) is ingested and its features built, then the churn
training stage runs twice on the same warehouse: ``train_exclude_treated`` off (every example)
and on (treated-in-window examples left out; controls kept). Each run's backtest model (trained
on the cutoffs before the test cutoff, never on it) scored every test-cutoff customer it was
given; both are compared on the same customers: the test cutoff's untreated ones (the population
whose "no intervention" risk is observable). Reported: AUC, log loss, mean predicted vs realized
churn, and how many examples the exclusion removed. → results/intervention-labels.json
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

END = dt.date(2025, 12, 31)
HORIZON = 90
TIER_CASES = {"S": ("10000:7", "10000:11"), "M": ("10000:7", "10000:11")}  # a study: tier-S shops at any tier
OUT = REPO / "benchmarks" / "results" / "intervention-labels.json"


def run_case(customers: int, seed: int) -> dict:
    from sklearn.metrics import log_loss, roc_auc_score

    from ml.core.settings import Settings
    from ml.core.warehouse import connect, fetch_frame
    from ml.stages.features.build import build_features
    from ml.stages.ingest import ingest
    from ml.stages.train import train
    from ml.synth.generate import ShopSpec, write_shop

    base = Path(tempfile.mkdtemp(prefix=f"labels-{customers}-{seed}-"))
    try:
        t0 = time.perf_counter()
        write_shop(base / "raw", ShopSpec(customers, seed, END, 730), END)
        settings = Settings.load(warehouse=base / "wh", raw_dir=base / "raw", as_of=END, horizon_days=HORIZON,
                                 seed=seed, retrain=True)
        ingest(settings)
        build_features(settings)
        build_seconds = time.perf_counter() - t0
        with connect(settings, read_only=True) as con:
            counts = fetch_frame(con, """
                select count(*) as examples,
                       count(*) filter (where is_treated_in_label_window) as treated_in_window,
                       avg(is_churned::int) filter (where is_treated_in_label_window) as churn_rate_treated,
                       avg(is_churned::int) filter (where not is_treated_in_label_window) as churn_rate_untreated
                from marts.training_examples
                where horizon_days = ? and as_of_date + to_days(horizon_days) <= ?""", [HORIZON, END]).iloc[0]
            test = fetch_frame(con, """
                select customer_id, is_churned::int as is_churned, is_treated_in_label_window
                from marts.training_examples where horizon_days = ? and is_backtest_cutoff""", [HORIZON])
        untreated = set(test.loc[~test["is_treated_in_label_window"].astype(bool), "customer_id"])
        runs = {}
        for name, exclude in (("all_examples", False), ("exclude_treated", True)):
            t1 = time.perf_counter()
            result = train(settings.replace(train_exclude_treated=exclude))
            bt = result.backtest
            sub = bt[bt["customer_id"].isin(untreated)]
            y, p = sub["is_churned"].to_numpy(int), sub["churn_probability"].to_numpy(float)
            runs[name] = {"auc_untreated": round(float(roc_auc_score(y, p)), 4),
                          "log_loss_untreated": round(float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6))), 4),
                          "mean_predicted_untreated": round(float(p.mean()), 4),
                          "realized_churn_untreated": round(float(y.mean()), 4),
                          "untreated_test_customers": len(sub), "backtest_customers": len(bt),
                          "model_version": result.version,
                          "test_auc_reported_by_training": result.metrics.get("test_auc"),
                          "train_seconds": round(time.perf_counter() - t1, 1)}
            print(f"  {customers}:{seed} {name}: {runs[name]}", flush=True)
        gain = runs["exclude_treated"]["auc_untreated"] - runs["all_examples"]["auc_untreated"]
        return {"customers": customers, "seed": seed, "examples": int(counts["examples"]),
                "treated_in_label_window": int(counts["treated_in_window"]),
                "treated_share": round(float(counts["treated_in_window"]) / float(counts["examples"]), 4),
                "churn_rate_treated_in_window": round(float(counts["churn_rate_treated"] or 0), 4),
                "churn_rate_untreated": round(float(counts["churn_rate_untreated"]), 4),
                "test_cutoff_customers": len(test), "test_cutoff_treated": int(test["is_treated_in_label_window"].sum()),
                "runs": runs, "auc_untreated_gain_from_exclusion": round(gain, 4),
                "build_seconds": round(build_seconds, 1), "loadavg": open("/proc/loadavg").read().split()[:3]}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="S")
    parser.add_argument("--cases", nargs="*")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    os.environ.setdefault("CHURNWATCH_PII_SALT", "bench-salt")
    cases = args.cases or list(TIER_CASES.get(args.tier, TIER_CASES["S"]))
    done = json.loads(args.out.read_text()) if args.out.exists() else {}
    for case in cases:
        customers, seed = map(int, case.split(":"))
        done[case] = run_case(customers, seed)
        gains = [v["auc_untreated_gain_from_exclusion"] for k, v in done.items() if isinstance(v, dict) and "runs" in v]
        done["summary"] = {"cases": [k for k in done if k != "summary"], "auc_untreated_gain_from_exclusion": gains,
                           "exclusion_helps_or_holds_in_every_case": bool(all(g >= -0.001 for g in gains))}
        args.out.write_text(json.dumps(done, indent=2, default=float) + "\n")
        print(case, json.dumps({k: v for k, v in done[case].items() if k != "runs"}), flush=True)


if __name__ == "__main__":
    main()
