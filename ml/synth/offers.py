"""What a retention contact does to one customer: the true effect of an offer through a channel.

The offers mirror ``dbt_project/seeds/offer_catalog.csv`` (the pipeline's catalog), so a
campaign file the CRM export writes can be applied to the latent customers as it is. The effect
``tau`` is a log-hazard reduction while the treatment acts (and a boost of the purchase rate,
see :func:`.dynamics.order_rate`); it is built from parts that show in the data the way the
retention literature reports, so uplift is learnable from observable behaviour:

* **coupons** work on the price-sensitive (who use coupons and discounts in their orders), and
  bigger coupons work more (diminishing returns): ``coupon_k * (d / 10%)^0.6 * max(0, ps - ps0)``;
* **service recovery** works on customers with a recent grievance (low ratings, unresolved
  tickets, cancelled or returned orders -- a decaying ``grievance`` in the latent state);
* **recommendations** help engaged browsers a little (browsing rate and engagement);
* **sleeping dogs**: a minority (``dog``, likelier among the low-engagement) are annoyed by
  contact, the more so the longer their tenure and when contacted again within
  ``recent_contact_days`` -- a negative part that outweighs most offers' pull.

``tau = channel effect x (receptiveness x response(offer) - annoyance)``; ``receptiveness`` is the
unobservable part (lognormal around 1). Dropped-out customers cannot be saved whatever ``tau``
is, since dropout is absorbing: the lost causes need no rule of their own.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OFFERS = ("COUPON10", "COUPON15", "COUPON20", "RECO_MSG", "SERVICE_CALL")
OFFER_CHANNEL = ("email", "email", "sms", "email", "phone")  # the catalog's channel per offer
OFFER_DISCOUNT = np.array([0.10, 0.15, 0.20, 0.0, 0.0])  # share off the next order (coupons)
COUPON, RECO, SERVICE = 0, 1, 2
OFFER_KIND = np.array([COUPON, COUPON, COUPON, RECO, SERVICE])
# the shop's own campaigns rotate the messages it can send itself (no care-team calls)
SHOP_OFFERS = np.array([0, 1, 2, 3])

CHANNELS = ("email", "sms", "push", "phone")
CHANNEL_EFFECT = np.array([1.0, 1.2, 0.6, 1.5])  # a call moves more than an e-mail, either way


@dataclass(frozen=True)
class EffectModel:
    coupon_k: float = 1.5  # tau of a 10% coupon for the most price-sensitive
    coupon_depth_exp: float = 0.6  # (discount / 10%)^exp: bigger coupons, diminishing returns
    coupon_ps_floor: float = 0.25  # price sensitivity below which coupons do nothing
    service_k: float = 0.7  # tau per unit of grievance ...
    service_cap: float = 2.0  # ... up to this much grievance
    reco_k: float = 0.35  # tau per unit of browsing keenness (0 .. 2)
    dog_k: float = 1.1  # a sleeping dog's annoyance after a year of tenure
    recent_k: float = 1.0  # a sleeping dog's annoyance grows by this share at a repeat contact ...
    recent_contact_days: int = 90  # ... within this many days of the last one
    receptiveness_sd: float = 0.35  # lognormal sd of the unobservable part


EFFECTS = EffectModel()


def offer_index(codes) -> np.ndarray:
    """Offer codes to indices into ``OFFERS``; unknown codes raise ValueError naming them."""
    return _index(codes, OFFERS, "offer_code")


def channel_index(names) -> np.ndarray:
    return _index(names, CHANNELS, "channel")


def _index(values, known: tuple[str, ...], what: str) -> np.ndarray:
    values = np.asarray(values, dtype=object)
    lookup = {v: i for i, v in enumerate(known)}
    idx = np.array([lookup.get(v, -1) for v in values], dtype=np.int8)
    if (idx < 0).any():
        bad = sorted({str(v) for v in values[idx < 0]})[:5]
        raise ValueError(f"unknown {what} {', '.join(bad)} (known: {', '.join(known)})")
    return idx


def shop_offer(cust: np.ndarray, campaign_no: int) -> np.ndarray:
    """The offer the shop's own campaign ``campaign_no`` sends each customer: a fixed hash.

    A hash instead of a random draw so the truth can replay a future campaign's offer without
    branching over it, and the simulation's random streams do not depend on it.
    """
    x = np.asarray(cust, np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(campaign_no * 7919 + 1)
    x ^= x >> np.uint64(31)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(29)
    return SHOP_OFFERS[(x % np.uint64(len(SHOP_OFFERS))).astype(np.intp)]


def combine(camp_until: np.ndarray, camp_tau: np.ndarray, day: int, tau_new: np.ndarray,
            effect_days: int) -> tuple[np.ndarray, np.ndarray]:
    """The treatment acting after a contact on ``day`` with effect ``tau_new``.

    A stronger contact replaces the treatment still acting (for a fresh window); a weaker one
    does not cancel it (a second coupon does not void the first), but its annoyance adds on.
    So only the annoyed -- the sleeping dogs -- can be harmed by a contact.
    """
    acting = camp_until > day
    keep = acting & (tau_new <= camp_tau)
    until = np.where(keep, camp_until, day + effect_days).astype(np.int32)
    tau = np.where(keep, camp_tau + np.minimum(tau_new, 0.0), tau_new)
    return until, tau


def grievance_decay(half_life_days: float = 45.0) -> float:
    return 0.5 ** (1.0 / half_life_days)


def treatment_effect(c, z: np.ndarray, grievance: np.ndarray, camp_until: np.ndarray, day: int,
                     offer: np.ndarray, channel: np.ndarray, effect_days: int,
                     browse_mean: float, e: EffectModel = EFFECTS) -> np.ndarray:
    """``tau`` of contacting each customer (rows of ``c``) on ``day`` with ``offer`` via ``channel``.

    ``z``, ``grievance`` and ``camp_until`` are the customers' latent state at the end of ``day``
    (``camp_until`` tells when they were last contacted).
    """
    offer = np.broadcast_to(offer, z.shape)
    kind = OFFER_KIND[offer]
    keen_buyer = np.maximum(0.0, c.price_sensitivity - e.coupon_ps_floor) / (1 - e.coupon_ps_floor)
    depth = (np.maximum(OFFER_DISCOUNT[offer], 1e-9) / 0.10) ** e.coupon_depth_exp
    keen_browser = np.clip(np.log(c.rho / browse_mean) + 0.6 * z + 0.5, 0.0, 2.0)
    response = np.select(
        [kind == COUPON, kind == SERVICE],
        [e.coupon_k * depth * keen_buyer, e.service_k * np.minimum(grievance, e.service_cap)],
        e.reco_k * keen_browser)
    tenure = np.clip((day - c.signup_day) / 365.0, 0.0, 1.0)
    recent = (camp_until >= 0) & (camp_until - effect_days >= day - e.recent_contact_days)
    annoyance = e.dog_k * c.dog * tenure * (1.0 + e.recent_k * recent)
    return CHANNEL_EFFECT[channel] * (c.receptiveness * response - annoyance)
