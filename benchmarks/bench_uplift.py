"""Uplift benchmark: which meta-learner ranks the true effects of the held-out campaign best.

    python benchmarks/bench_uplift.py                       # every case → results/uplift.json
    python benchmarks/bench_uplift.py --cases 10000:7       # some cases, merged into the file

A case is ``customers:seed``. Its shop (two years to 2025-12-31) goes through ingest and the
feature build, so ``marts.campaign_outcomes`` is the pipeline's own. The time split is the
uplift stage's: train on the campaigns before the latest closed one, evaluate on that one. The
generator's truth gives every held-out contact's P(stay) if treated with each of the shop's
offers (through their usual channel) and if not contacted.

Candidates: the learners of ml.model.uplift (scikit-uplift TwoModels: pooled with the offer as a
feature, one pair per offer, ddr_control) and, written here since scikit-uplift has neither, an
X-learner and a DR-learner (cross-fitted pseudo-outcomes) on the same LightGBM boosters. The
prior policy's ranking (catalog effect × churn probability) is scored with the TRUE churn
probability: an upper bound on what the priors can do.

Reported per candidate: Qini with the truth (1 perfect, 0 random) of the ranking of what each
contact got, its mean over the offers (ranking every held-out contact for each offer), and the
realized Qini / AUUC / uplift@30% of scikit-uplift on the campaign's outcomes; fit seconds.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

END = dt.date(2025, 12, 31)
HORIZON = 90
CASES = ("10000:7", "10000:11")
OUT = REPO / "benchmarks" / "results" / "uplift.json"


def build(customers: int, seed: int, base: Path):
    """Generate, ingest, build features; the shop object (for truth) and the settings."""
    from ml.core.settings import Settings
    from ml.stages.features.build import build_features
    from ml.stages.ingest import ingest
    from ml.synth.generate import ShopSpec, write_shop

    _, shop = write_shop(base / "raw", ShopSpec(customers, seed, END, 730), END)
    settings = Settings.load(warehouse=base / "wh", raw_dir=base / "raw", as_of=END, horizon_days=HORIZON)
    ingest(settings)
    build_features(settings)
    return shop, settings


def truth(shop, campaign: str, customer_ids: np.ndarray) -> pd.DataFrame:
    """P(stay) if not contacted and if treated with each shop offer, per held-out contact."""
    from ml.synth.campaigns import shop_contact
    from ml.synth.contacts import campaign_id
    from ml.synth.offers import OFFERS, SHOP_OFFERS
    from ml.synth.params import MODEL
    from ml.synth.truth import prob_no_order, retention_if_contacted

    rec = next(r for r in shop.hist.campaigns if campaign_id(r.campaign_no, shop.cal, r.day) == campaign)
    cs = shop.people.subset(rec.customers)
    _, channel = shop_contact(cs, rec.customers, rec.campaign_no)
    out = pd.DataFrame({"customer_id": shop.ids.take(rec.customers).to_pylist()})
    out["p_not"] = 1.0 - prob_no_order(cs, rec.before, shop.cal, MODEL, HORIZON, rec.customers)
    for k in SHOP_OFFERS:
        p = retention_if_contacted(cs, rec.before, rec.customers, np.full(len(cs.h0), k, np.int8),
                                   channel, shop.cal, MODEL, HORIZON)
        out[f"effect_{OFFERS[k]}"] = p - out["p_not"]
    out = out.set_index("customer_id").loc[customer_ids].reset_index()
    return out


class HandLearner:
    """X- or DR-learner over the same treatment encoding as ml.model.uplift's pooled T-learner."""

    def __init__(self, features, kind: str, seed: int = 42):
        self.features, self.kind, self.seed = features, kind, seed

    def fit(self, contacts, y, t):
        from ml.model.churn_model import FeatureSpec
        from ml.model.uplift import CHANNEL, OFFER, base_booster

        from lightgbm import LGBMRegressor

        self.spec = FeatureSpec.from_data(contacts, self.features + [OFFER, CHANNEL])
        X, cat = self.spec.matrix(contacts), self.spec.categorical_indices
        y, t = np.asarray(y, float), np.asarray(t, int)
        e = t.mean()
        reg = dict(n_estimators=300, learning_rate=0.03, num_leaves=15, min_child_samples=40, subsample=0.8,
                   subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0, verbose=-1, n_jobs=2)
        folds = np.random.default_rng(self.seed).integers(0, 2, len(y))
        mu0, mu1 = np.zeros(len(y)), np.zeros(len(y))
        for f in (0, 1):  # cross-fitted outcome models: pseudo-outcomes never see their own row
            fit, pred = folds != f, folds == f
            m0 = base_booster(self.seed).fit(X[fit & (t == 0)], y[fit & (t == 0)], categorical_feature=cat)
            m1 = base_booster(self.seed + 1).fit(X[fit & (t == 1)], y[fit & (t == 1)], categorical_feature=cat)
            mu0[pred], mu1[pred] = m0.predict_proba(X[pred])[:, 1], m1.predict_proba(X[pred])[:, 1]
        if self.kind == "dr":
            phi = mu1 - mu0 + t * (y - mu1) / e - (1 - t) * (y - mu0) / (1 - e)
            self.tau = LGBMRegressor(random_state=self.seed, **reg).fit(X, phi, categorical_feature=cat)
        else:  # X-learner: imputed effects per arm, blended by the propensity
            self.tau1 = LGBMRegressor(random_state=self.seed, **reg).fit(
                X[t == 1], y[t == 1] - mu0[t == 1], categorical_feature=cat)
            self.tau0 = LGBMRegressor(random_state=self.seed, **reg).fit(
                X[t == 0], mu1[t == 0] - y[t == 0], categorical_feature=cat)
            self.e = e
        return self

    def uplift(self, customers, offer_code, channel):
        from ml.model.uplift import CHANNEL, OFFER

        X = self.spec.matrix(customers.assign(**{OFFER: offer_code, CHANNEL: channel}))
        if self.kind == "dr":
            return self.tau.predict(X)
        return self.e * self.tau0.predict(X) + (1 - self.e) * self.tau1.predict(X)


def run_case(customers: int, seed: int) -> dict:
    from ml.model.uplift import UpliftLearner, qini_with_truth, realized_scores
    from ml.core.warehouse import connect, fetch_frame
    from ml.stages.uplift import feature_columns, split_campaigns

    base = Path(tempfile.mkdtemp(prefix=f"uplift-{customers}-{seed}-"))
    t0 = time.perf_counter()
    shop, settings = build(customers, seed, base)
    build_seconds = time.perf_counter() - t0
    with connect(settings, read_only=True) as con:
        frame = fetch_frame(con, "select * from marts.campaign_outcomes where is_outcome_known "
                                 "and is_active_at_contact order by campaign_id, customer_id", [])
    train, held, held_id = split_campaigns(frame)
    features = feature_columns(frame)
    true = truth(shop, held_id, held["customer_id"].to_numpy())
    offers = sorted(c.removeprefix("effect_") for c in true if c.startswith("effect_"))
    got = np.array([true.at[i, f"effect_{o}"] for i, o in enumerate(held["offer_code"])])
    y, t = held["is_retained"].to_numpy(int), (~held["is_control"].to_numpy(bool)).astype(int)
    catalog = pd.read_csv(REPO / "dbt_project" / "seeds" / "offer_catalog.csv").set_index("offer_code")

    candidates = {k: (lambda k=k: UpliftLearner(features, k, seed=settings.seed)) for k in
                  ("t_pooled", "t_per_offer", "t_ddr_control")}
    candidates["x_learner (hand)"] = lambda: HandLearner(features, "x")
    candidates["dr_learner (hand)"] = lambda: HandLearner(features, "dr")
    results = {}
    p_churn_true = 1.0 - true["p_not"].to_numpy()
    for name, make in candidates.items():
        c0 = time.perf_counter()
        learner = make().fit(train, train["is_retained"].to_numpy(int), (~train["is_control"].to_numpy(bool)).astype(int))
        fit_seconds = time.perf_counter() - c0
        score = np.zeros(len(held))
        for (code, channel), rows in held.groupby(["offer_code", "contact_channel"]).indices.items():
            score[rows] = learner.uplift(held.iloc[rows], code, channel)
        per_offer = {o: qini_with_truth(true[f"effect_{o}"].to_numpy(),
                                        learner.uplift(held, o, catalog.at[o, "channel"])) for o in offers}
        results[name] = {"truth_qini_received": qini_with_truth(got, score),
                         "truth_qini_per_offer_mean": float(np.mean(list(per_offer.values()))),
                         "truth_qini_per_offer": per_offer, **realized_scores(y, score, t),
                         "fit_seconds": round(fit_seconds, 2)}
    prior = p_churn_true * catalog.loc[held["offer_code"], "expected_effect"].to_numpy()
    results["prior (true churn probability x catalog effect)"] = {
        "truth_qini_received": qini_with_truth(got, prior),
        "truth_qini_per_offer_mean": float(np.mean([qini_with_truth(true[f"effect_{o}"].to_numpy(), p_churn_true)
                                                    for o in offers])),
        **realized_scores(y, prior, t)}
    return {"customers": customers, "seed": seed, "held_out_campaign": held_id,
            "train_campaigns": sorted(train["campaign_id"].unique().tolist()),
            "train_rows": len(train), "held_out_rows": len(held), "held_out_controls": int((t == 0).sum()),
            "mean_true_effect_received": float(got.mean()), "build_seconds": round(build_seconds, 1),
            "loadavg": open("/proc/loadavg").read().split()[:3], "results": results}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    os.environ.setdefault("CHURNWATCH_PII_SALT", "bench-salt")
    done = json.loads(args.out.read_text()) if args.out.exists() else {}
    for case in args.cases:
        customers, seed = map(int, case.split(":"))
        done[case] = run_case(customers, seed)
        args.out.write_text(json.dumps(done, indent=2, default=float) + "\n")
        summary = {k: {m: round(v[m], 3) for m in ("truth_qini_received", "truth_qini_per_offer_mean", "qini", "auuc")}
                   for k, v in done[case]["results"].items()}
        print(case, json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
