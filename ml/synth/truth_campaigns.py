"""The truth of an applied campaign: every customer's chance to stay, for every offer and for none.

For each customer active at the campaign's as-of date (an order of any status by then) or
listed in the file, and for each offer of the catalog sent through its catalog channel, the
probability of at least one order in the ``horizon`` days after the contact if contacted with
that offer and if not contacted, from the latent state at the end of the as-of day (before the
contact). Both come from :mod:`.truth`'s exact recursion, so they average over the rest of the
process (including any shop campaign in the window) but assume no further campaign file.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa

from .offers import CHANNELS, OFFER_CHANNEL, OFFERS, channel_index
from .params import MODEL
from .truth import prob_no_order, retention_if_contacted


def campaign_truth(shop, inj, rows: pd.DataFrame, horizon: int) -> pa.Table:
    """Long table: one row per (customer, offer); see ``TRUTH_README`` for the columns."""
    cal, people = shop.cal, shop.people
    state = shop.hist.snapshots[inj.day]
    who = np.union1d(np.flatnonzero(state.last_order >= 0), inj.customers).astype(np.int64)
    alive = state.alive[who]
    calc = who[alive]  # the dropped-out stay 0 whatever is sent: lost causes
    cs, st = people.subset(calc), state.take(calc)
    p_not = np.zeros(len(who))
    p_not[alive] = 1.0 - prob_no_order(cs, st, cal, MODEL, horizon, calc)
    p_treated = np.zeros((len(OFFERS), len(who)))
    for k, channel in enumerate(channel_index(list(OFFER_CHANNEL))):
        p_treated[k, alive] = retention_if_contacted(
            cs, st, calc, np.full(len(calc), k, np.int8), np.full(len(calc), channel, np.int8),
            cal, MODEL, horizon)

    got = pd.DataFrame({"row": inj.customers, "offer": np.asarray(OFFERS)[inj.offer],
                        "channel": np.asarray(CHANNELS)[inj.channel], "is_control": inj.is_control})
    for col in ("assignment", "propensity"):
        got[col] = rows[col].to_numpy() if col in rows else None
    got = got.set_index("row").reindex(who)

    n_offers, n = len(OFFERS), len(who)

    def rep(values) -> np.ndarray:  # per-customer values on every offer's rows (offer-major)
        return np.tile(np.asarray(values), n_offers)

    as_of = cal.date_of(inj.day)
    return pa.table({
        "campaign_id": pa.array([inj.campaign_id] * (n * n_offers), pa.string()),
        "customer_id": shop.ids.take(pa.array(rep(who))),
        "as_of_date": pa.array(np.full(n * n_offers, as_of), pa.date32()),
        "contact_date": pa.array(np.full(n * n_offers, as_of + dt.timedelta(days=1)), pa.date32()),
        "horizon_days": pa.array(np.full(n * n_offers, horizon, np.int32)),
        "offer_code": pa.array(np.repeat(np.asarray(OFFERS), n), pa.string()),
        "channel": pa.array(np.repeat(np.asarray(OFFER_CHANNEL), n), pa.string()),
        "p_stay_if_treated": pa.array(p_treated.ravel()),
        "p_stay_if_not": pa.array(rep(p_not)),
        "true_effect": pa.array(p_treated.ravel() - rep(p_not)),
        "is_alive": pa.array(rep(alive)),
        "received_offer": _nullable(rep(got["offer"]), pa.string()),
        "received_channel": _nullable(rep(got["channel"]), pa.string()),
        "is_control": _nullable(rep(got["is_control"]), pa.bool_()),
        "assignment": _nullable(rep(got["assignment"]), pa.string()),
        "propensity": _nullable(rep(got["propensity"]), pa.float64()),
    })


def _nullable(values: np.ndarray, type_: pa.DataType) -> pa.Array:
    """Values of an optional column; missing (None / NaN: not listed) become NULL."""
    values = pd.Series(values, dtype=object)
    if pa.types.is_string(type_):
        values = values.where(values.isna(), values.astype(str))
    return pa.array(values, type_, from_pandas=True)


TRUTH_README = """\
Ground truth of this simulated shop (churnwatch simulate). The pipeline never reads this folder.

campaigns/<campaign_id>.parquet -- one row per (customer, offer of the catalog) for every customer
active at the campaign's as_of_date (an order of any status by then) or listed in its file.
  as_of_date, contact_date    the file's as_of_date; contacts happen the next morning
  horizon_days                H ({horizon}): staying = at least one order on contact_date .. +H-1
  offer_code, channel         the offer, sent through the catalog's channel for it
  p_stay_if_treated           P(stay) if contacted with this offer, from the latent state at the
                              end of as_of_date (exact: averaged over the rest of the process,
                              shop campaigns included, no further campaign file assumed)
  p_stay_if_not               P(stay) if not contacted (the same on every offer's row)
  true_effect                 p_stay_if_treated - p_stay_if_not (< 0: a sleeping dog for it)
  is_alive                    false: already dropped out (a lost cause: both probabilities 0)
  received_offer, received_channel, is_control, assignment, propensity
                              what the campaign file gave the customer (null: not listed)
applied_campaigns.parquet -- every campaign file applied to this shop so far (the next
simulate run re-applies them: pass it only the new file).
"""
