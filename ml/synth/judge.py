"""Judging a campaign assignment against a simulated campaign's truth (for benchmarks and tests).

``read_campaign_truth(shop_dir, campaign_id)`` loads ``_truth/campaigns/<campaign_id>.parquet``;
``judge(truth, assignment)`` takes any assignment -- customer_id -> offer_code, or None / no
entry for "not contacted" -- and returns what it is truly worth:

* ``expected_incremental_retained``: sum over contacted customers of the true effect
  (p_stay_if_treated - p_stay_if_not) of the offer they got -- the expected number of customers
  kept who would otherwise have left (negative contributions included);
* ``per_1000_offers``: the same per thousand contacts;
* ``sleeping_dogs``: contacts whose true effect is negative (< -0.001: beyond rounding);
* ``lost_causes``: contacts already dropped out (p_stay_if_not = p_stay_if_treated = 0).

``oracle_assignment(truth, budget)`` and ``random_assignment(truth, budget, seed)`` give the
benchmark's reference points: the best offer for the ``budget`` customers with the largest true
effect, and ``budget`` customers picked at random with a random offer.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

SLEEPING_DOG = -0.001  # true effect below this counts as harm, not rounding
LOST = 1e-9


def read_campaign_truth(shop_dir: Path, campaign_id: str) -> pd.DataFrame:
    path = Path(shop_dir) / "_truth" / "campaigns" / f"{campaign_id}.parquet"
    if not path.is_file():
        raise ValueError(f"no truth for campaign {campaign_id} under {path.parent}")
    return pq.read_table(path).to_pandas()


def judge(truth: pd.DataFrame, assignment) -> dict:
    """True worth of ``assignment`` (dict / Series / DataFrame with customer_id, offer_code)."""
    chosen = _as_frame(assignment)
    chosen = chosen[chosen["offer_code"].notna()]
    merged = chosen.merge(truth, on=["customer_id", "offer_code"], how="left", indicator=True)
    unknown = merged["_merge"] != "both"
    if unknown.any():
        row = merged[unknown].iloc[0]
        raise ValueError(f"{int(unknown.sum())} assigned (customer, offer) pairs are not in the truth, "
                         f"e.g. {row['customer_id']} / {row['offer_code']}")
    effect = merged["true_effect"].to_numpy()
    lost = (merged["p_stay_if_not"] < LOST) & (merged["p_stay_if_treated"] < LOST)
    n = len(merged)
    gain = float(effect.sum())
    return {
        "contacts": n,
        "expected_incremental_retained": gain,
        "per_1000_offers": 1000 * gain / n if n else 0.0,
        "sleeping_dogs": int((effect < SLEEPING_DOG).sum()),
        "lost_causes": int(lost.sum()),
        "expected_retained_if_treated": float(merged["p_stay_if_treated"].sum()),
        "by_offer": merged.groupby("offer_code")["true_effect"].agg(["count", "sum"]).to_dict("index"),
    }


def oracle_assignment(truth: pd.DataFrame, budget: int) -> pd.DataFrame:
    """The ``budget`` customers with the largest true effect, each with their best offer."""
    best = truth.loc[truth.groupby("customer_id")["true_effect"].idxmax()]
    best = best[best["true_effect"] > 0].nlargest(budget, "true_effect")
    return best[["customer_id", "offer_code"]].reset_index(drop=True)


def random_assignment(truth: pd.DataFrame, budget: int, seed: int = 0) -> pd.DataFrame:
    """``budget`` customers at random, each with an offer at random."""
    rng = np.random.default_rng(seed)
    customers = truth["customer_id"].drop_duplicates().to_numpy()
    picked = rng.choice(customers, min(budget, len(customers)), replace=False)
    offers = truth["offer_code"].drop_duplicates().to_numpy()
    return pd.DataFrame({"customer_id": picked, "offer_code": rng.choice(offers, len(picked))})


def _as_frame(assignment) -> pd.DataFrame:
    if isinstance(assignment, pd.DataFrame):
        return assignment[["customer_id", "offer_code"]].astype({"customer_id": str})
    if isinstance(assignment, dict):
        assignment = pd.Series(assignment, dtype=object)
    return pd.DataFrame({"customer_id": assignment.index.astype(str),
                         "offer_code": assignment.to_numpy(object)})
