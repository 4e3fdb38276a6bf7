"""How close can any model get to the truth? The churn model with and without the hidden state.

    python benchmarks/bench_ceiling.py --tier S      # 10k customers → results/ceiling-S.json

Issue 5 asks for a test-cutoff AUC of at least 0.97 x the AUC of the generator's true churn
probabilities (``oracle_auc``). Those probabilities are computed from each customer's hidden
traits and alive/dead state, which no data shows. This benchmark measures how much of the gap
is information the data does not carry, on the shop, features and split of ``bench_model.py``
(same --workdir; the shop is prepared when missing):

- ``model``: the pipeline's recipe (the bounded search, customer folds early-stopped at the
  validation cutoff, refit on the honest cutoffs) on the warehouse features.
- ``distilled``: the same features fitted to the true probabilities instead of 0/1 labels (no
  label noise): what these features hold at best, however much data there is.
- ``with_traits`` / ``with_alive`` / ``with_z`` / ``with_alive_and_z`` /
  ``with_traits_alive_and_z``: the features plus the generator's hidden per-customer traits
  (``ml.synth.latent.TRAITS``), its alive flag or engagement at each cutoff, both, or all;
  settings from the model's search, trees re-chosen by early stopping. Alive and engagement
  apart say which hidden state the gap is made of.

Each is reported as AUC on the test cutoff and as a ratio to ``oracle_auc``, with a paired
bootstrap interval for the model's ratio. Calibration is monotone, so it does not change AUC.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _report as report  # noqa: E402
from bench_model import END, HORIZON, TIERS, _in_child, backtest_cutoff, prepare  # noqa: E402

BOOTSTRAP = 500


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", choices=sorted(TIERS), default="S")
    parser.add_argument("--customers", type=int, help="override the tier's customer count")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--cutoffs", type=int, default=16)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/churnwatch-bench-model"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("CHURNWATCH_PII_SALT", "bench-only-salt")

    import numpy as np

    from ml.model.metrics import auc
    from ml.core.settings import Settings
    from ml.synth.latent import TRAITS, latent_states
    from ml.stages.train.examples import read_examples
    from ml.stages.train.fit import _calibration_rows, _dataset, cross_fit, tune
    from ml.stages.train.timer import Timer

    customers = args.customers or TIERS[args.tier]
    workdir = args.workdir / f"{args.tier}-{customers}-{args.seed}-{args.cutoffs}"
    if not (workdir / "prepared.json").exists():
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        print(f"preparing tier {args.tier}: {customers:,} customers …", flush=True)
        (workdir / "prepared.json").write_text(json.dumps(
            _in_child(prepare, str(workdir), customers, args.seed, args.cutoffs)))
    settings = Settings.load(warehouse=workdir / "warehouse", as_of=END, horizon_days=HORIZON,
                             n_training_cutoffs=args.cutoffs, retrain=True)
    load_before, started = os.getloadavg(), time.perf_counter()

    data = read_examples(settings)
    split = data.split
    honest = data.rows(split.honest) & data.fitted()
    test, valid = data.rows([split.test]), data.rows([split.valid])
    if str(split.test) != str(backtest_cutoff(END, HORIZON)):
        raise SystemExit(f"test cutoff {split.test} is not the shop's truth date {backtest_cutoff(END, HORIZON)}")

    print("replaying the shop's hidden state …", flush=True)
    keys = data.info[["customer_id", "as_of_date"]].astype({"as_of_date": "datetime64[ns]"})
    latent = latent_states(customers, args.seed, END, sorted(set(keys["as_of_date"].dt.date)),
                           truth_as_of=backtest_cutoff(END, HORIZON), horizon_days=HORIZON)
    latent = keys.merge(latent, on=["customer_id", "as_of_date"], how="left", validate="1:1")
    if latent["true_churn_probability"].isna().any():
        raise SystemExit("some examples have no hidden state: is the warehouse built from this shop?")
    truth = latent["true_churn_probability"].to_numpy()
    y_test = data.y[test]
    oracle_auc = auc(y_test, truth[test])

    timer = Timer()
    calibrate = _calibration_rows(honest, settings.train_calibration_max_rows, settings.seed)

    def with_columns(columns: list[str]):
        extra = latent[columns].to_numpy(np.float32) if columns else np.zeros((len(keys), 0), np.float32)
        spec = dataclasses.replace(data.spec, features=data.spec.features + columns)
        return dataclasses.replace(data, X=np.hstack([data.X, extra]), spec=spec)

    def fit_and_score(d, params=None) -> tuple[np.ndarray, dict]:
        import lightgbm as lgb

        ds, idx = _dataset(timer, d, honest, settings.train_threads)
        if params is None:
            cf, _ = tune(timer, settings, d, ds, idx, valid, calibrate)
        else:
            cf = cross_fit(timer, d, ds, idx, valid, params, settings.train_cv_folds, calibrate_on=calibrate)
        booster = lgb.train(cf.params, ds, cf.num_iteration)
        return booster.predict(d.X[test]), {"trees": cf.num_iteration, "params": cf.params}

    def distilled() -> tuple[np.ndarray, dict]:
        """The model's settings, fitted to the true probabilities (cross-entropy on soft labels)."""
        import lightgbm as lgb

        params = {**chosen, "objective": "cross_entropy", "metric": "cross_entropy"}
        params.pop("scale_pos_weight", None)
        rows = np.flatnonzero(honest)
        stop = np.flatnonzero(valid & (data.fold == 0))
        fit = rows[data.fold[rows] != 0]
        cat = data.spec.categorical_indices
        dfit = lgb.Dataset(data.X[fit], truth[fit], categorical_feature=cat, params={"verbose": -1})
        dstop = lgb.Dataset(data.X[stop], truth[stop], categorical_feature=cat, reference=dfit)
        probe = lgb.train(params, dfit, 5000, valid_sets=[dstop],
                          callbacks=[lgb.early_stopping(50, verbose=False)])
        trees = int(probe.best_iteration or probe.current_iteration())
        booster = lgb.train(params, lgb.Dataset(data.X[rows], truth[rows], categorical_feature=cat,
                                                params={"verbose": -1}), trees)
        return booster.predict(data.X[test]), {"trees": trees}

    rows = {}

    def record(name: str, what: str, score: np.ndarray, extra: dict) -> None:
        value = auc(y_test, score)
        rows[name] = {"what": what, "auc": round(value, 4), "oracle_ratio": round(value / oracle_auc, 4),
                      "trees": extra["trees"]}
        print(f"{name:28s} AUC {value:.4f}  ratio {value / oracle_auc:.4f}", flush=True)

    print("fitting …", flush=True)
    model_score, fitted = fit_and_score(data)
    chosen = {k: v for k, v in fitted["params"].items()}
    record("model", "warehouse features, the pipeline's search", model_score, fitted)
    record("distilled", "warehouse features fitted to the true probabilities", *distilled())
    for name, columns, what in (
        ("with_traits", list(TRAITS), "features + hidden traits"),
        ("with_alive", ["alive"], "features + hidden alive flag"),
        ("with_z", ["z"], "features + hidden engagement"),
        ("with_alive_and_z", ["alive", "z"], "features + hidden alive flag and engagement"),
        ("with_traits_alive_and_z", [*TRAITS, "alive", "z"], "features + hidden traits, alive flag, engagement"),
    ):
        record(name, what, *fit_and_score(with_columns(columns), chosen))

    # paired bootstrap over test customers: how steady is the model's ratio?
    rng = np.random.default_rng(settings.seed)
    truth_test, ratios = truth[test], []
    for _ in range(BOOTSTRAP):
        pick = rng.integers(0, len(y_test), len(y_test))
        ratios.append(auc(y_test[pick], model_score[pick]) / auc(y_test[pick], truth_test[pick]))
    low, high = np.percentile(ratios, [2.5, 97.5])

    out = {
        "tier": args.tier,
        "customers": customers,
        "seed": args.seed,
        "test_cutoff": str(split.test),
        "test_customers": int(test.sum()),
        "fit_rows": int(honest.sum()),
        "dropped_out_share_at_test": round(float(1 - latent.loc[test, "alive"].mean()), 4),
        "oracle_auc": round(oracle_auc, 4),
        "model_oracle_ratio_95": [round(low, 4), round(high, 4)],
        "experiments": rows,
        "target_oracle_ratio": 0.97,
        "chosen": {k: chosen[k] for k in ("num_leaves", "min_data_in_leaf", "feature_fraction", "lambda_l2")
                   if k in chosen},
        "seconds": round(time.perf_counter() - started, 1),
        "machine": report.machine(load_before, os.getloadavg()),
        "measured_at": report.measured_at(),
    }
    path = args.out or REPO / "benchmarks" / "results" / f"ceiling-{args.tier}.json"
    report.write(path, out)
    print(json.dumps({k: out[k] for k in ("oracle_auc", "model_oracle_ratio_95", "experiments")}, indent=2))
    return out


if __name__ == "__main__":
    main()
