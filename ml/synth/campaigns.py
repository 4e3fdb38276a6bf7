"""Retention campaigns inside the simulation: the shop's own, and campaign files injected into it.

Both happen at the end of a day ``t`` and act on days ``t+1 .. t+effect_days``: a treated
customer's effect ``tau`` (:mod:`.offers`) is computed from their state at that moment and held
for the treatment window (a stronger later contact replaces it, see :func:`.offers.combine`).
Control customers are only recorded.

* The shop's campaign (every ``campaign_every_days``) picks at-risk customers (last completed
  order 21-120 days ago) at random, holds ~15% out, and sends each the offer a fixed hash gives
  them (coupons or recommendations, through the customer's usual channel): a randomised
  experiment over offers the pipeline can learn from.
* An injected campaign (:class:`Injection`, built from a CRM file by :mod:`.simulate`) treats
  exactly the rows it lists, with their offer and channel. It draws no random numbers, so the
  random streams -- and everything before its day -- stay those of the plain generator.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .offers import channel_index, combine, shop_offer, treatment_effect
from .params import ShopModel
from .world import CONTACT_CHANNELS, Customers

_SHOP_CHANNEL = channel_index(list(CONTACT_CHANNELS))  # contact channel -> offers.CHANNELS


@dataclass
class CampaignRecord:
    """One campaign as it happened: who was contacted or held out, with what, and the state before."""
    campaign_no: int  # the shop's campaign number; -1 for an injected file
    day: int
    customers: np.ndarray  # contacted customers (treated and control), int32
    is_control: np.ndarray
    offer: np.ndarray  # int8 index into offers.OFFERS (a control's would-be offer)
    channel: np.ndarray  # int8 index into offers.CHANNELS
    before: object  # State of the contacted customers before assignment (end of day)
    campaign_id: str | None = None  # given for injected campaigns


@dataclass(frozen=True)
class Injection:
    """A campaign file resolved to customer rows: contact at the end of ``day``."""
    campaign_id: str
    day: int
    customers: np.ndarray  # int32 row of each listed customer
    offer: np.ndarray  # int8
    channel: np.ndarray  # int8
    is_control: np.ndarray  # bool


def campaign_eligible(last_completed: np.ndarray, day: int, m: ShopModel) -> np.ndarray:
    """At risk, as the shop sees it: last completed order between the recency bounds."""
    gap = day - last_completed
    return (last_completed >= 0) & (gap >= m.campaign_recency[0]) & (gap <= m.campaign_recency[1])


def contact_effect(c: Customers, st, day: int, offer: np.ndarray, channel: np.ndarray,
                   m: ShopModel) -> np.ndarray:
    """``tau`` of contacting the customers of ``c`` (state ``st``, same rows) at the end of ``day``."""
    return treatment_effect(c, st.z, st.grievance, st.camp_until, day, offer, channel,
                            m.campaign_effect_days, m.browse_rate_mean, m.effects)


def shop_contact(c: Customers, cust: np.ndarray, number: int) -> tuple[np.ndarray, np.ndarray]:
    """Offer and channel of the shop's campaign ``number`` for customers ``cust`` (rows of ``c``)."""
    return shop_offer(cust, number), _SHOP_CHANNEL[c.contact_channel]


def run_shop_campaign(c: Customers, number: int, st, rng: np.random.Generator,
                      m: ShopModel) -> CampaignRecord:
    """Pick at-risk customers, hold out a random control group, start the treatment."""
    eligible = np.flatnonzero(campaign_eligible(st.last_completed, st.day, m))
    picked = eligible[rng.random(len(eligible)) < m.campaign_contact_share]
    is_control = rng.random(len(picked)) < m.campaign_control_share
    offer, channel = shop_contact(c.subset(picked), picked, number)
    rec = CampaignRecord(number, st.day, picked.astype(np.int32), is_control, offer, channel,
                         st.take(picked))
    _treat(c, rec, st, m)
    return rec


def apply_injection(c: Customers, inj: Injection, st, m: ShopModel) -> CampaignRecord:
    """Treat the rows of a campaign file that are not held out (no randomness)."""
    rec = CampaignRecord(-1, st.day, inj.customers, inj.is_control, inj.offer, inj.channel,
                         st.take(inj.customers), inj.campaign_id)
    _treat(c, rec, st, m)
    return rec


def _treat(c: Customers, rec: CampaignRecord, st, m: ShopModel) -> None:
    treated = ~rec.is_control
    rows = rec.customers[treated]
    tau = contact_effect(c.subset(rows), rec.before.take(np.flatnonzero(treated)), st.day,
                         rec.offer[treated], rec.channel[treated], m)
    st.camp_until[rows], st.camp_tau[rows] = combine(st.camp_until[rows], st.camp_tau[rows], st.day,
                                                     tau, m.campaign_effect_days)
