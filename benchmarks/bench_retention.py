"""Retention-loop benchmark (issue 19 item 8): what each targeting policy is truly worth, cycle after cycle.

    python benchmarks/bench_retention.py --tier S            # 10k customers → results/retention-S.json
    python benchmarks/bench_retention.py --tier M            # 1M customers  → results/retention-M.json
    python benchmarks/bench_retention.py --customers 800 --cycles 2 --out /tmp/r.json   # smoke size

A generated shop (two years to 2025-12-31) is ingested and its features built; the churn model
is trained once. Then, for every monthly cycle (as-of dates 30 days apart):

1. **score** the active customers with the churn champion (``ml.stages.score``);
2. **train the uplift model** on every closed campaign in ``marts.campaign_outcomes`` (the shop's
   own history and churnwatch's earlier campaigns; ``ml.stages.uplift.train_uplift``, gate and
   all), then **decide** with the product's settings (``effect_model`` auto: the uplift champion
   when it passed its gate, else the catalog priors; control and exploration rows as usual) at a
   contact cap of 10% of the scored customers, build the marts and write the CRM file
   (``export_crm``), exactly what a shop would receive;
3. **simulate**: the CRM file is applied to the latent shop (``ml.synth.simulate``), which
   continues 30 days and writes the next exports and the campaign's truth: every active
   customer's P(stay) over the horizon if sent each offer and if not contacted;
4. **judge every policy counterfactually** on that truth at the same number of contacts
   (5%, 10%, 20%, 40% of the scored customers; the 10% point gives the main figures):
   (a) ``random``: customers at random, an offer at random among the eligible ones;
   (b) ``risk_top_k``: the highest churn probabilities; (c) ``value_at_risk_top_k``: the highest
   churn probability × predicted value; both send the offer the catalog priors value most;
   (d) ``prior``: today's policy on the catalog priors (net = p × effect × value − cost);
   (e) ``uplift``: the same policy on the effect model decide used this cycle (the uplift champion,
   or the priors when the gate kept them: ``effect_source`` per cycle says which), plus
   ``uplift_challenger``: the latest trained uplift model whether or not it passed the gate;
   (f) ``oracle``: the true best eligible offer for the customers with the largest true effect
   (``oracle_any_offer``: the same without the catalog's eligibility rules).
   The policies (d)-(f) contact fewer than the budget when fewer customers have a positive
   expected net value; ``offers`` says how many they sent;
5. **ingest** the new exports and rebuild the features (incremental), and repeat.

Figures from the truth, summed over the cycles: incremental customers retained (Σ true effect of
the offer sent) per 1,000 offers, incremental net value (Σ true effect × predicted value − unit
cost; the value is the pipeline's predicted value, the truth has none), the share of contacts that
are sleeping dogs (true effect < −0.001) and lost causes (already dropped out). ``qini_vs_truth``:
how the uplift model (the cycle's latest version) ranks the true effects, per catalog offer over
the scored customers, averaged over offers and cycles (1 perfect, 0 random).
Wall time per stage and cycle and the load average are recorded.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

END = dt.date(2025, 12, 31)
HISTORY_DAYS = 730
HORIZON = 90
CYCLE_DAYS = 30
MAIN_SHARE = 0.10
CURVE_SHARES = (0.05, 0.10, 0.20, 0.40)
TIERS = {"S": (10_000, 7), "M": (1_000_000, 7)}
POLICIES = ("random", "risk_top_k", "value_at_risk_top_k", "prior", "uplift", "oracle")
EXTRA = ("uplift_challenger", "oracle_any_offer")
OUT_DIR = REPO / "benchmarks" / "results"

log = logging.getLogger("bench_retention")


def loadavg() -> list[str]:
    return open("/proc/loadavg").read().split()[:3]


class Clock:
    """Wall seconds per named stage (summed when a stage repeats)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        started = time.perf_counter()
        out = fn(*args, **kwargs)
        took = time.perf_counter() - started
        self.seconds[name] = round(self.seconds.get(name, 0.0) + took, 2)
        print(f"  {name}: {took:.1f}s (loadavg {' '.join(loadavg())})", flush=True)
        return out


# ---- the policies ------------------------------------------------------------------------------


def prepare_customers(settings):
    """The scored customers as decide sees them (segments, service issue), and the offer catalog."""
    from ml.model.segments import segment_customers
    from ml.stages.decide import has_service_issue, load_offer_catalog, load_scored_customers

    customers = load_scored_customers(settings)
    customers = customers.join(segment_customers(
        customers, risk_high=settings.risk_tier_high, risk_medium=settings.risk_tier_medium,
        value_high_share=settings.value_tier_high_share, value_medium_share=settings.value_tier_medium_share))
    customers["has_service_issue"] = has_service_issue([customers[c] for c in ("reason_1", "reason_2", "reason_3")])
    return customers, load_offer_catalog(settings)


def model_policy(effect_model, customers, offers, k: int) -> np.ndarray:
    """The product's targeting (ml.model.policy.choose_offers) with only the contact cap binding."""
    from ml.model.policy import choose_offers
    from ml.stages.decide import policy_values

    _, _, net = policy_values(effect_model, customers, offers)
    choice, _ = choose_offers(net, offers["unit_cost"].to_numpy(float), float("inf"),
                              np.ones(len(customers), bool), max_contacts=k)
    return choice


def prior_best_offer(customers, offers) -> np.ndarray:
    """Per customer the eligible offer with the highest prior net value (sign ignored)."""
    from ml.stages.decide import PriorEffects, expected_net_values

    prior = PriorEffects()
    net = expected_net_values(customers["churn_probability"].to_numpy(float), customers["predicted_value"].to_numpy(),
                              prior.relative_effects(customers, offers), offers["unit_cost"].to_numpy(float))
    return np.argmax(net, axis=1)


def top_k(score: np.ndarray, k: int) -> np.ndarray:
    order = np.lexsort((np.arange(len(score)), -np.asarray(score, float)))  # ties: position
    return order[:k]


def assignments(customers, offers, truth, k: int, models: dict, seed: int) -> dict[str, pd.DataFrame]:
    """customer_id, offer_code per policy at ``k`` contacts."""
    from ml.stages.decide import eligibility

    ids = customers["customer_id"].to_numpy()
    codes = offers["offer_code"].to_numpy()
    eligible = eligibility(customers, offers)

    def frame(rows: np.ndarray, offer_idx: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"customer_id": ids[rows].astype(str), "offer_code": codes[offer_idx]})

    out = {}
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(ids), min(k, len(ids)), replace=False)
    picks = np.array([rng.choice(np.flatnonzero(eligible[r])) for r in rows], dtype=int)
    out["random"] = frame(rows, picks)
    best_prior = prior_best_offer(customers, offers)
    rows = top_k(customers["churn_probability"].to_numpy(float), k)
    out["risk_top_k"] = frame(rows, best_prior[rows])
    var = customers["churn_probability"].to_numpy(float) * np.nan_to_num(customers["predicted_value"].to_numpy(float))
    rows = top_k(var, k)
    out["value_at_risk_top_k"] = frame(rows, best_prior[rows])
    for name, model in models.items():
        choice = model_policy(model, customers, offers, k)
        rows = np.flatnonzero(choice >= 0)
        out[name] = frame(rows, choice[rows])

    # the oracle: true effects of the catalog's offers for the scored customers
    effect = truth_matrix(truth, ids, codes)
    for name, mask in (("oracle", eligible), ("oracle_any_offer", np.ones_like(eligible))):
        masked = np.where(mask & np.isfinite(effect), effect, -np.inf)  # an offer without truth is no choice
        best = np.argmax(masked, axis=1)
        value = masked[np.arange(len(ids)), best]
        rows = top_k(value, k)
        rows = rows[value[rows] > 0]
        out[name] = frame(rows, best[rows])
    return out


def truth_matrix(truth: pd.DataFrame, ids: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """True effect per (scored customer, catalog offer); NaN where the truth has no row."""
    wide = truth.pivot(index="customer_id", columns="offer_code", values="true_effect")
    return wide.reindex(index=pd.Index(ids.astype(str)), columns=list(codes)).to_numpy(float)


def judge_policy(truth: pd.DataFrame, chosen: pd.DataFrame, customers, offers) -> dict:
    from ml.synth.judge import judge

    value = customers.set_index(customers["customer_id"].astype(str))["predicted_value"]
    cost = offers.set_index("offer_code")["unit_cost"]
    known = chosen[chosen["customer_id"].isin(set(truth["customer_id"]))]
    result = judge(truth, known) if len(known) else {
        "contacts": 0, "expected_incremental_retained": 0.0, "sleeping_dogs": 0, "lost_causes": 0}
    merged = known.merge(truth[["customer_id", "offer_code", "true_effect"]], on=["customer_id", "offer_code"])
    net = (merged["true_effect"].to_numpy() * np.nan_to_num(value.loc[merged["customer_id"]].to_numpy(float))
           - cost.loc[merged["offer_code"]].to_numpy(float))
    return {"offers": int(result["contacts"]), "not_in_truth": int(len(chosen) - len(known)),
            "incremental_retained": float(result["expected_incremental_retained"]),
            "incremental_net_value": float(net.sum()),
            "sleeping_dogs": int(result["sleeping_dogs"]), "lost_causes": int(result["lost_causes"])}


def summarise(per_cycle: list[dict]) -> dict:
    """Sums over cycles → the keys the checks read."""
    offers = sum(c["offers"] for c in per_cycle)
    gain = sum(c["incremental_retained"] for c in per_cycle)
    dogs = sum(c["sleeping_dogs"] for c in per_cycle)
    lost = sum(c["lost_causes"] for c in per_cycle)
    return {"incremental_retained_per_1000_offers": round(1000 * gain / offers, 2) if offers else 0.0,
            "incremental_net_value": round(sum(c["incremental_net_value"] for c in per_cycle), 2),
            "sleeping_dog_share": round(dogs / offers, 4) if offers else 0.0,
            "lost_cause_share": round(lost / offers, 4) if offers else 0.0,
            "offers": offers, "incremental_retained": round(gain, 2)}


def qini_vs_truth(model, customers, offers, truth) -> dict:
    """Per catalog offer: Qini of the model's uplift against the true effect, over the scored customers."""
    from ml.model.uplift import qini_with_truth

    predicted = np.asarray(model.expected_effects(customers, offers), float)
    effect = truth_matrix(truth, customers["customer_id"].to_numpy(), offers["offer_code"].to_numpy())
    out = {}
    for j, code in enumerate(offers["offer_code"]):
        ok = np.isfinite(predicted[:, j]) & np.isfinite(effect[:, j])
        if ok.sum() >= 50:
            out[code] = round(qini_with_truth(effect[ok, j], predicted[ok, j]), 4)
    return out


# ---- the loop ----------------------------------------------------------------------------------


def run(customers: int, seed: int, cycles: int, base: Path, quick_training: bool = False,
        shares=CURVE_SHARES) -> dict:
    from ml.core import registry
    from ml.core.settings import Settings
    from ml.stages.decide import build_marts, decide
    from ml.stages.features.build import build_features
    from ml.stages.ingest import ingest
    from ml.stages.publish.crm_export import export_crm
    from ml.stages.score import score
    from ml.stages.train import train
    from ml.stages.uplift import UpliftEffects, load_effect_model, train_uplift, uplift_settings
    from ml.stages.decide import PriorEffects
    from ml.synth.generate import ShopSpec, write_shop
    from ml.synth.judge import read_campaign_truth
    from ml.synth.simulate import simulate

    started = time.perf_counter()
    clock = Clock()
    load = {"start": loadavg()}
    raw = base / "raw-0"
    print(f"retention: {customers} customers, seed {seed}, {cycles} cycles in {base}", flush=True)
    clock.run("generate", write_shop, raw, ShopSpec(customers, seed, END, HISTORY_DAYS), END)
    overrides = dict(warehouse=base / "wh", raw_dir=raw, as_of=END, horizon_days=HORIZON, seed=seed,
                     contact_share=MAIN_SHARE, campaign_budget=1e12, effect_model="auto", retrain=True)
    if quick_training:
        overrides.update(n_training_cutoffs=8, train_search_trials=2)
    settings = Settings.load(**overrides)
    clock.run("ingest", ingest, settings)
    clock.run("features", build_features, settings)
    trained = clock.run("train_churn", train, settings)
    log.info("churn model: %s", getattr(trained, "version", None))

    cycle_rows = []
    for cycle in range(cycles):
        as_of = END + dt.timedelta(days=CYCLE_DAYS * cycle)
        settings = settings.replace(as_of=as_of, raw_dir=raw)
        print(f"cycle {cycle + 1}/{cycles}: as-of {as_of}", flush=True)
        stage0 = dict(clock.seconds)
        if cycle:
            clock.run("ingest", ingest, settings)
            clock.run("features", build_features, settings)
        clock.run("score", score, settings)
        uplift_result = clock.run("train_uplift", train_uplift, settings)
        decided = clock.run("decide", decide, settings)
        clock.run("marts", build_marts, settings)
        manifest = clock.run("export_crm", export_crm, settings)
        campaign_file = settings.crm_export_dir / f"{settings.campaign_id}.parquet"
        next_raw = base / f"raw-{cycle + 1}"
        clock.run("simulate", simulate, raw, [campaign_file], as_of + dt.timedelta(days=CYCLE_DAYS), next_raw,
                  horizon_days=HORIZON)
        truth = read_campaign_truth(next_raw, settings.campaign_id)

        # every policy on this cycle's truth, at the same numbers of contacts
        t_eval = time.perf_counter()
        customers_frame, offers = prepare_customers(settings)
        champion = load_effect_model(settings)
        models = {"prior": PriorEffects(), "uplift": champion or PriorEffects()}
        up = uplift_settings(settings)
        challenger_ref = registry.alias_version(up, registry.CHALLENGER)
        challenger = None
        if challenger_ref is not None:
            challenger = UpliftEffects(settings, registry.load_version(up, challenger_ref.version),
                                       f"{challenger_ref.name}/{challenger_ref.version}")
            models["uplift_challenger"] = challenger
        n = len(customers_frame)
        row = {"cycle": cycle + 1, "as_of": as_of.isoformat(), "campaign_id": settings.campaign_id,
               "scored_customers": n, "active_in_truth": int(truth["customer_id"].nunique()),
               "effect_source": decided["effect_source"], "effect_model_version": decided["effect_model_version"],
               "uplift_training": {k: uplift_result.get(k) for k in ("status", "version", "held_out_campaign",
                                                                      "decision", "qini", "reason")},
               "campaign": {k: decided[k] for k in ("audience", "treated", "control", "exploration",
                                                     "expected_net_value", "actions")},
               "crm_rows": manifest["rows"], "budgets": {}}
        for share in shares:
            k = int(round(share * n))
            chosen = assignments(customers_frame, offers, truth, k, models, seed=seed * 1000 + cycle)
            row["budgets"][f"{share:.2f}"] = {"contacts": k, **{
                name: judge_policy(truth, frame, customers_frame, offers) for name, frame in chosen.items()}}
        if challenger is not None:
            q = qini_vs_truth(challenger, customers_frame, offers, truth)
            row["qini_vs_truth"] = {"per_offer": q, "mean": round(float(np.mean(list(q.values()))), 4) if q else None,
                                    "model": challenger.version}
        clock.seconds["evaluate"] = round(clock.seconds.get("evaluate", 0.0) + time.perf_counter() - t_eval, 2)
        row["stage_seconds"] = {k: round(v - stage0.get(k, 0.0), 2) for k, v in clock.seconds.items()
                                if v - stage0.get(k, 0.0) > 0}
        row["loadavg"] = loadavg()
        cycle_rows.append(row)
        main = row["budgets"][f"{MAIN_SHARE:.2f}"]
        print(f"cycle {cycle + 1}: effect source {row['effect_source']}; per 1,000 offers at 10%: "
              + ", ".join(f"{p} {1000 * main[p]['incremental_retained'] / max(main[p]['offers'], 1):.1f}"
                          for p in (*POLICIES, *EXTRA) if p in main)
              + (f"; qini vs truth {row['qini_vs_truth']['mean']}" if "qini_vs_truth" in row else ""), flush=True)
        raw = next_raw

    curve = {}
    for share in shares:
        key = f"{share:.2f}"
        names = [p for p in (*POLICIES, *EXTRA) if all(p in r["budgets"][key] for r in cycle_rows)]
        curve[key] = {p: summarise([r["budgets"][key][p] for r in cycle_rows]) for p in names}
    main = curve[f"{MAIN_SHARE:.2f}"]
    qinis = [r["qini_vs_truth"]["mean"] for r in cycle_rows if r.get("qini_vs_truth", {}).get("mean") is not None]
    load["end"] = loadavg()
    result = {
        "customers": customers, "seed": seed, "cycles": cycles, "cycle_days": CYCLE_DAYS, "horizon_days": HORIZON,
        "budget": {"contact_share_of_scored": MAIN_SHARE,
                   "contacts_per_cycle": [r["budgets"][f"{MAIN_SHARE:.2f}"]["contacts"] for r in cycle_rows],
                   "money": "unbounded (the contact cap binds)"},
        "policies": {p: main[p] for p in POLICIES},
        "extra_policies": {p: main[p] for p in EXTRA if p in main},
        "curve": curve,
        "qini_vs_truth": round(float(np.mean(qinis)), 4) if qinis else None,
        "targets": targets(curve),
        "per_cycle": cycle_rows,
        "stage_seconds": clock.seconds,
        "seconds": round(time.perf_counter() - started, 1),
        "loadavg": load,
        "notes": "value in incremental_net_value = the pipeline's predicted value (the truth has none); "
                 "policies (b)-(c) send the offer the catalog priors value most; (d)-(f) may send fewer "
                 "offers than the budget when fewer customers have a positive expected net value",
    }
    return result


def targets(curve: dict) -> dict:
    main = curve[f"{MAIN_SHARE:.2f}"]
    up, rnd, orc = (main[p]["incremental_retained_per_1000_offers"] for p in ("uplift", "random", "oracle"))
    return {
        "uplift_vs_random (>= 2)": round(up / rnd, 3) if rnd else None,
        "uplift_ge_2x_random": bool(rnd > 0 and up >= 2 * rnd),
        "uplift_vs_oracle (>= 0.4)": round(up / orc, 3) if orc else None,
        "uplift_ge_0.4x_oracle": bool(orc > 0 and up >= 0.4 * orc),
        "uplift_sleeping_dogs_le_random": bool(main["uplift"]["sleeping_dog_share"] <= main["random"]["sleeping_dog_share"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="S", choices=sorted(TIERS))
    parser.add_argument("--customers", type=int, help="override the tier's size (smoke runs)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--cycles", type=int, default=4)
    parser.add_argument("--quick-training", action="store_true", help="8 cutoffs, 2 search trials")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()
    os.environ.setdefault("CHURNWATCH_PII_SALT", "bench-salt")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    customers, seed = TIERS[args.tier]
    customers, seed = args.customers or customers, args.seed if args.seed is not None else seed
    out = args.out or OUT_DIR / f"retention-{args.tier}.json"
    base = Path(tempfile.mkdtemp(prefix=f"retention-{customers}-"))
    try:
        result = run(customers, seed, args.cycles, base, quick_training=args.quick_training)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    result["tier"] = args.tier if args.customers is None else None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps({"policies": result["policies"], "targets": result["targets"],
                      "qini_vs_truth": result["qini_vs_truth"], "seconds": result["seconds"]}, indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
