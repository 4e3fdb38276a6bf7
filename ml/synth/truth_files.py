"""The generator's truth files: true churn probabilities at a date, true campaign effects.

Written under ``_truth/`` (see ``TRUTH_README``, copied there); the pipeline never reads them.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .calendar import Calendar
from .contacts import campaign_id
from .dynamics import History
from .params import ShopModel
from .truth import campaign_effect, churn_truth
from .world import Customers


def write_truth(truth_dir: Path, people: Customers, hist: History, cal: Calendar,
                 model: ShopModel, ids: pa.Array, as_of: dt.date, horizon: int) -> dict:
    truth_dir.mkdir(parents=True, exist_ok=True)
    active, p = churn_truth(people, hist.snapshots[cal.day_of(as_of)], cal, model, horizon)
    pq.write_table(pa.table({
        "customer_id": ids.take(pa.array(active)),
        "truth_as_of": pa.array(np.full(len(active), as_of), pa.date32()),
        "horizon_days": pa.array(np.full(len(active), horizon, np.int32)),
        "true_churn_probability": pa.array(p),
    }), truth_dir / "churn_truth.parquet", compression="zstd")
    effects = _campaign_effects_table(people, hist, cal, model, horizon)
    pq.write_table(effects, truth_dir / "campaign_effects.parquet", compression="zstd")
    (truth_dir / "README.txt").write_text(TRUTH_README.format(as_of=as_of, horizon=horizon))
    return {"as_of": as_of.isoformat(), "horizon_days": horizon, "active_customers": len(active),
            "mean_true_churn_probability": round(float(p.mean()), 4) if len(p) else None,
            "campaigns": effects.num_rows}


def _campaign_effects_table(people: Customers, hist: History, cal: Calendar, model: ShopModel,
                            horizon: int) -> pa.Table:
    rows = []
    for rec in hist.campaigns:
        if rec.day >= cal.observed_days or len(rec.customers) == 0:
            continue  # not in the written data
        e = campaign_effect(people, rec, cal, model, horizon)
        gain = e["if_treated"] - e["if_control"]
        treated = ~rec.is_control
        rows.append(dict(
            campaign_id=rec.campaign_id or campaign_id(rec.campaign_no, cal, rec.day), campaign_date=cal.date_of(rec.day),
            horizon_days=horizon, contacted=len(rec.customers), treated=int(treated.sum()),
            control=int(rec.is_control.sum()),
            true_average_effect=float(gain.mean()),
            true_effect_on_treated=float(gain[treated].mean()) if treated.any() else None,
            true_retention_if_treated=float(e["if_treated"].mean()),
            true_retention_if_control=float(e["if_control"].mean()),
        ))
    schema = pa.schema([("campaign_id", pa.string()), ("campaign_date", pa.date32()),
                        ("horizon_days", pa.int32()), ("contacted", pa.int64()),
                        ("treated", pa.int64()), ("control", pa.int64()),
                        ("true_average_effect", pa.float64()), ("true_effect_on_treated", pa.float64()),
                        ("true_retention_if_treated", pa.float64()),
                        ("true_retention_if_control", pa.float64())])
    return pa.Table.from_pylist(rows, schema=schema)


TRUTH_README = """\
Ground truth of this synthetic shop. The churnwatch pipeline never reads this folder; it is
here to score what the pipeline learns against what is known to be true.

churn_truth.parquet -- one row per customer active at truth_as_of ({as_of}), i.e. with at least
one order (of any status) on or before that day, as the pipeline's labels define it.
  customer_id             as in the raw files (text, leading zeros kept)
  truth_as_of             the cutoff date D
  horizon_days            H ({horizon})
  true_churn_probability  P(the customer places no order -- of any status -- on the days
                          D+1 .. D+H), given their full latent state at the end of day D
                          (alive or dropped out, engagement, traits, any campaign treatment
                          still acting). Computed exactly from the generating process, averaging
                          over its remaining randomness (dropout day, purchase draws, assignment
                          in any campaign inside the window). A customer who has already dropped
                          out has probability 1. With end_date >= D+H the realised churn in the
                          data is one draw from these probabilities.

campaign_effects.parquet -- one row per retention campaign in the data (campaign_contacts).
  campaign_id, campaign_date   as in campaign_contacts (contact at the end of campaign_date c)
  horizon_days                 H: retention means at least one order on days c+1 .. c+H
  contacted, treated, control  customers picked, treated, held out as control
  true_average_effect          mean over all contacted customers (treated and control) of
                               P(retained | treated) - P(retained | control), each computed from
                               the customer's latent state just before assignment. Assignment is
                               random, so this is the expected value of the realised difference
                               in retention rate, treated minus control.
  true_effect_on_treated       the same mean over the treated only
  true_retention_if_treated    mean P(retained | treated) over the contacted
  true_retention_if_control    mean P(retained | control) over the contacted
Each contacted customer got one of the catalog's offers (COUPON10/15/20, RECO_MSG, picked by a
fixed hash: a randomised experiment) through their usual channel. Effects are heterogeneous and
follow observable behaviour: coupons move the price-sensitive (more for bigger coupons),
recommendations the keen browsers, a few "sleeping dogs" (likelier among the low-engagement,
worse with tenure and repeat contact) react badly; the dropped-out cannot be saved. A treatment
lowers the dropout hazard and raises the purchase rate for 60 days.
"""
