"""Does the production calibrator miss because it is fitted on fold boosters but applied to the refit?

    python benchmarks/bench_calibration_refit.py --cases 5000:7 5000:11   # → results/calibration-refit.json

The production calibrator is fitted on the out-of-fold margins of three customer-fold boosters
(each trained on 2/3 of the customers) and applied to the booster refitted on all of them. If the
refit's margins were sharper or shifted, the published probabilities would be off by exactly that
mismatch. Per case (a shop whose data end 90 days after 2025-12-31, built as ``bench_calibration``
builds it), training's own functions are run and, at the scoring cutoff (realized outcomes and the
generator's true probabilities known), these are compared with the same calibrator:

- ``deployed_full_refit``: what the pipeline publishes (refit booster's margin);
- ``fold_avg_margin`` / ``fold_mean_proba``: the fold boosters themselves (average margin; average
  calibrated probability) — the candidate fix;
- ``t0_recalibrated_*``: the refit's margin through a calibrator fitted where the refit's situation
  is mimicked (the honest refit's margins at the test cutoff, with its labels).

Also at the test cutoff (labels known): the honest recipe's refit vs its fold average, each fold
booster on customers it trained on vs not (memorisation), and the out-of-fold calibration per
cutoff (does the base rate move with time in ways the booster does not follow?). Run it under the
shared heavy lock; each 5k case takes about a minute.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _report as report  # noqa: E402
from bench_calibration import AS_OF, HORIZON, realized_churn  # noqa: E402


def judge(p, y, truth=None) -> dict:
    from ml.model.metrics import auc, expected_calibration_error as ece

    row = {"mean_p": round(float(p.mean()), 4), "ece_realized": round(ece(y, p), 4), "auc": round(auc(y, p), 4)}
    if truth is not None:
        known = ~np.isnan(truth)
        row.update({"ece_vs_truth": round(ece(truth[known], p[known]), 4),
                    "mean_truth": round(float(truth[known].mean()), 4)})
    return row


def run_case(work: Path, customers: int, seed: int) -> dict:
    from ml.core.settings import Settings
    from ml.core.warehouse import connect, fetch_arrow
    from ml.model.calibration import fit_calibrator
    from ml.stages.train import fit
    from ml.stages.train.examples import read_examples
    from ml.stages.train.timer import Timer

    raw = work / "raw"
    settings = Settings.load(warehouse=work / "warehouse", raw_dir=raw, as_of=AS_OF, horizon_days=HORIZON, retrain=True)
    if not (work / "built").exists():
        from ml.stages.features import build_features
        from ml.stages.ingest import ingest
        from ml.synth import generate

        generate(raw, customers=customers, seed=seed, end_date=AS_OF + dt.timedelta(days=HORIZON),
                 truth_as_of=AS_OF, horizon_days=HORIZON)
        ingest(settings)
        build_features(settings)
        (work / "built").write_text("ok")
    data = read_examples(settings)
    split, fitted = data.split, data.fitted()
    honest, full, test = data.rows(split.honest) & fitted, data.rows(split.full) & fitted, data.rows([split.test])
    boosters, timer = [], Timer()
    fit_booster = timer.fit
    timer.fit = lambda *a, **k: boosters.append(fit_booster(*a, **k)) or boosters[-1]

    # the pipeline's own recipe: backtest, then production (3 fold boosters + the refit)
    backtest = fit.fit_backtest(timer, settings, data, honest)
    boosters.clear()
    cf_full, production = fit.fit_production(timer, settings, data, full, backtest.best)
    folds, refit, trees, calibrator = boosters[:-1], boosters[-1], cf_full.num_iteration, production.calibrator
    # the same recipe one horizon earlier (honest rows, same trees), judged at the test cutoff
    boosters.clear()
    ds, idx = fit._dataset(timer, data, honest, settings.train_threads)
    cf_honest = fit.cross_fit(timer, data, ds, idx, data.rows([split.valid]), backtest.best.params,
                              settings.train_cv_folds, rounds=trees,
                              calibrate_on=fit._calibration_rows(honest, settings.train_calibration_max_rows, settings.seed))
    honest_calibrator = fit.fit_scorer(timer, settings, ds, cf_honest).calibrator
    folds_honest, refit_honest = boosters[:-1], boosters[-1]
    margin = lambda booster, X: booster.predict(X, num_iteration=trees, raw_score=True)  # noqa: E731

    with connect(settings, read_only=True) as con:
        scoring = fetch_arrow(con, "select * from marts.customer_features where as_of_date = ?", [AS_OF])
    X, ids = data.spec.matrix(scoring), scoring.column("customer_id").to_pylist()
    y = realized_churn(raw, ids, AS_OF, HORIZON)
    truth = (pd.read_parquet(raw / "_truth" / "churn_truth.parquet").set_index("customer_id")["true_churn_probability"]
             .reindex(ids).to_numpy(float))
    m_refit = margin(refit, X)
    fold_margins = [margin(b, X) for b in folds]
    at_scoring = {
        "deployed_full_refit": judge(calibrator.predict(m_refit), y, truth),
        "fold_avg_margin": judge(calibrator.predict(np.mean(fold_margins, axis=0)), y, truth),
        "fold_mean_proba": judge(np.mean([calibrator.predict(m) for m in fold_margins], axis=0), y, truth),
        "truth": judge(truth[~np.isnan(truth)], y[~np.isnan(truth)]),
    }
    X_test, y_test = data.X[test], data.y[test]
    m_test = margin(refit_honest, X_test)
    for method in ("platt", "isotonic", "auto"):
        recalibrated = fit_calibrator(m_test, y_test, method, seed=settings.seed)
        at_scoring[f"t0_recalibrated_{method}"] = judge(recalibrated.predict(m_refit), y, truth)
    fold_test = data.fold[test]
    memorisation = {}
    for k, booster in enumerate(folds_honest):
        p = honest_calibrator.predict(margin(booster, X_test))
        seen, unseen = fold_test != k, fold_test == k
        memorisation[f"fold_{k}"] = {"seen_bias": round(float(p[seen].mean() - y_test[seen].mean()), 4),
                                     "unseen_bias": round(float(p[unseen].mean() - y_test[unseen].mean()), 4)}
    oof_p, oof_cutoff = calibrator.predict(cf_full.margin), data.cutoff[np.flatnonzero(full)]
    return {
        "customers": customers, "seed": seed, "as_of": str(AS_OF), "calibrator": calibrator.method, "trees": trees,
        "realized_churn_rate": round(float(y.mean()), 4),
        "margins_at_scoring": {"refit_mean": round(float(m_refit.mean()), 3), "refit_sd": round(float(m_refit.std()), 3),
                               "fold_avg_mean": round(float(np.mean(fold_margins)), 3),
                               "oof_calibration_mean": round(float(cf_full.margin.mean()), 3)},
        "at_scoring_cutoff": at_scoring,
        "at_test_cutoff": {"test_cutoff": str(split.test), "base_rate": round(float(y_test.mean()), 4),
                           "refit": judge(honest_calibrator.predict(m_test), y_test),
                           "fold_avg_margin": judge(honest_calibrator.predict(
                               np.mean([margin(b, X_test) for b in folds_honest], axis=0)), y_test),
                           "fold_boosters_on_seen_vs_unseen_customers": memorisation},
        "oof_bias_by_cutoff": {str(c): round(float(oof_p[oof_cutoff == c].mean() - cf_full.y[oof_cutoff == c].mean()), 4)
                               for c in np.unique(oof_cutoff)},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["5000:7", "5000:11"], help="customers:seed")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/churnwatch-bench-calibration-refit"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "calibration-refit.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("CHURNWATCH_PII_SALT", "bench-only-salt")
    cases = {}
    for text in args.cases:
        customers, seed = (int(x) for x in text.split(":"))
        load_before = os.getloadavg()
        row = run_case(args.workdir / f"{customers}-{seed}", customers, seed)
        row["machine"], row["measured_at"] = report.machine(load_before, os.getloadavg()), report.measured_at()
        cases[text] = row
        report.write(args.out, {"what": "production calibrator: refit booster vs the fold boosters it was fitted on",
                                "cases": cases})
    return cases


if __name__ == "__main__":
    main()
