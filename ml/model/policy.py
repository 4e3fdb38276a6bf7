"""The retention policy: which offer each customer gets under a budget, who is held out, who explores.

Pure functions over arrays (no I/O); ``ml/stages/decide.py`` feeds them one scoring run.

- **Value**: :func:`net_values` — ``uplift × predicted_value − unit_cost`` per (customer, offer),
  where uplift is the absolute expected change in P(stay). Pairs whose uplift is NaN (offer not
  eligible) or not positive are ``−inf``: an offer predicted not to help is never chosen, so a
  customer whose best uplift is not positive (a "sleeping dog") is never contacted.
- **Targeting**: :func:`choose_offers` — each customer gets the offer maximising ``net − λ·cost``,
  or nothing when that is not positive, with the smallest ``λ ≥ 0`` whose spend fits the money
  budget (bisection on a monotone spend); an optional cap on contacts keeps only the best
  ``max_contacts`` of those (by ``net − λ·cost``, ties by position).
- **Control**: :func:`control_flags` — a stable hash of ``(campaign_id, customer_id)`` below the
  control share; a rerun of the campaign holds out the very same customers.
- **Exploration**: :func:`draw_exploration` — customers with a positive uplift for some offer, in
  the order of a second stable hash, each with an offer drawn uniformly (a third hash) among the
  offers predicted to help them, are taken until the exploration budget (money and contacts) would
  be exceeded. Hash order is a random permutation, so the draw is a uniform sample of the eligible
  customers and every (customer, offer) pair has a known, non-zero probability.
- **Propensity**: :func:`propensities` — per row, the probability under this design that the
  customer received what the row records (the offer, or no contact for control), given the
  policy's choice for that customer; what an uplift learner needs to weight the log without bias.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

ASSIGNMENTS = ("targeted", "exploration", "control")


# ---- value ----------------------------------------------------------------------------------------


def net_values(uplift: np.ndarray, value: np.ndarray, unit_cost: np.ndarray) -> np.ndarray:
    """``uplift × value − cost`` per (customer, offer); −inf where uplift is NaN or not positive."""
    uplift = np.asarray(uplift, float)
    gain = np.nan_to_num(np.asarray(value, float))[:, None] * uplift
    return protect_sleeping_dogs(gain - np.asarray(unit_cost, float)[None, :], uplift)


def protect_sleeping_dogs(net: np.ndarray, uplift: np.ndarray) -> np.ndarray:
    """``net`` with −inf wherever the offer is not predicted to raise P(stay) (uplift ≤ 0 or NaN)."""
    with np.errstate(invalid="ignore"):
        helps = np.asarray(uplift, float) > 0
    return np.where(helps, net, -np.inf)


# ---- targeting under a budget ---------------------------------------------------------------------


def _top(values: np.ndarray, keep: int) -> tuple[float, int]:
    """The ``keep``-th best of ``values`` in the order (value descending, position ascending):
    returns its value and position, the cut-off of the best ``keep``."""
    threshold = np.partition(values, len(values) - keep)[len(values) - keep]
    above = int(np.count_nonzero(values > threshold))
    tied = np.flatnonzero(values == threshold)
    return float(threshold), int(tied[keep - above - 1])


def choose_offers(net: np.ndarray, unit_cost: np.ndarray, budget: float, billable: np.ndarray,
                  iterations: int = 60, tolerance: float = 1e-7,
                  max_contacts: int | None = None) -> tuple[np.ndarray, float]:
    """Per customer the offer index maximising ``net − λ·cost`` (−1: nothing), and λ.

    λ is the smallest non-negative price of a unit of budget at which the spend on billable
    customers (the treated; controls cost nothing) fits ``budget`` (found by bisection to a
    relative ``tolerance``; the returned λ always fits). With ``max_contacts``, at each price only
    the best ``max_contacts`` billable customers by ``net − λ·cost`` (ties: lower position first)
    are kept, and a non-billable customer is kept when it ranks within that cut-off too, so controls
    are chosen by the same rule as the treated.
    """
    n, k = net.shape
    cost = np.asarray(unit_cost, float)
    billable = np.asarray(billable, bool)
    capped = max_contacts is not None and int(np.count_nonzero(billable)) > max_contacts

    # offers as rows (one contiguous array per offer): the bisection compares offer by offer,
    # keeping the first best on ties as argmax does; with NaNs, argmax's NaN rule is kept instead
    by_offer = np.ascontiguousarray(np.asarray(net, float).T)
    has_nan = bool(np.isnan(by_offer).any())

    def best_offers(lam: float, rows: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(best adjusted value, its label) per customer; labels[j] stands for offer j."""
        best_value = rows[0] - lam * cost[0]
        best = np.full(rows.shape[1], labels[0])
        value, better = np.empty_like(best_value), np.empty(rows.shape[1], bool)
        for j in range(1, k):
            np.subtract(rows[j], lam * cost[j], out=value)
            np.greater(value, best_value, out=better)
            np.copyto(best_value, value, where=better)
            np.copyto(best, labels[j], where=better)
        return best_value, best

    def best_all(lam: float) -> tuple[np.ndarray, np.ndarray]:
        if has_nan:
            adjusted = net - lam * cost[None, :]
            best = np.argmax(adjusted, axis=1)
            return adjusted[np.arange(n), best], best
        return best_offers(lam, by_offer, np.arange(k))

    def within_cap(best_value: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        """``chosen`` cut to the best ``max_contacts`` billable (and the non-billable ranking among them)."""
        candidates = np.flatnonzero(chosen & billable)
        if not capped or len(candidates) <= max_contacts:
            return chosen
        if max_contacts <= 0:
            return np.zeros(n, bool)
        threshold, last = _top(best_value[candidates], max_contacts)
        position = np.arange(n)
        return chosen & ((best_value > threshold) | ((best_value == threshold) & (position <= candidates[last])))

    def solve(lam: float) -> np.ndarray:
        if k == 0:
            return np.full(n, -1)
        best_value, best = best_all(lam)
        chosen = within_cap(best_value, best_value > 0)
        return np.where(chosen, best, -1)

    # only the billable customers spend, so the bisection solves for them alone and tracks the
    # chosen offer's cost directly: the same costs in the same order as cost[choice], the same sum
    billed = by_offer[:, billable] if not billable.all() else by_offer

    def spend(lam: float) -> float:
        if k == 0 or has_nan or capped:
            choice = solve(lam)[billable]
            return float(cost[choice[choice >= 0]].sum())
        best_value, best_cost = best_offers(lam, billed, cost)
        return float(best_cost[best_value > 0].sum())

    if spend(0.0) <= budget:
        return solve(0.0), 0.0
    finite = np.isfinite(net)
    lo, hi = 0.0, float(np.max(np.where(finite, net, 0.0) / cost[None, :])) + 1.0  # at hi nobody is chosen
    for _ in range(iterations):
        if hi - lo <= tolerance * hi:
            break
        mid = (lo + hi) / 2
        if spend(mid) <= budget:
            hi = mid
        else:
            lo = mid
    return solve(hi), hi


def contact_cap(customers: int, contact_share: float) -> int | None:
    """The most customers a campaign contacts: ``contact_share`` of the scored ones (None: no cap)."""
    if not 0.0 < contact_share <= 1.0:
        raise ValueError(f"contact_share must be in (0, 1], got {contact_share}")
    return None if contact_share >= 1.0 else int(np.floor(contact_share * customers))


# ---- stable hashes: control group and exploration --------------------------------------------------


def hash_uniform(customer_ids: np.ndarray, key: str) -> np.ndarray:
    """blake2b-64 of ``"<key>\\x1f<customer_id>"`` / 2**64: a stable uniform in [0, 1) per customer."""
    # the prefix is hashed once; each customer continues from a copy of that state (the same
    # digest as hashing prefix + id, without re-hashing the prefix a million times)
    seeded = hashlib.blake2b(key.encode() + b"\x1f", digest_size=8)
    digests = []
    for customer_id in map(str, customer_ids):
        h = seeded.copy()
        h.update(customer_id.encode())
        digests.append(h.digest())
    return np.frombuffer(b"".join(digests), dtype=">u8").astype(np.float64) / 2.0**64


def control_flags(customer_ids: np.ndarray, campaign_id: str, share: float) -> np.ndarray:
    """Stable hash of (campaign_id, customer_id) → uniform in [0, 1) → below ``share``: control."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"control_share must be in [0, 1), got {share}")
    return hash_uniform(customer_ids, campaign_id) < share


@dataclass(frozen=True)
class Exploration:
    """The exploration draw of one campaign."""

    drawn: np.ndarray  # (n,) bool: in the exploration sample (billable ones are contacted)
    offer: np.ndarray  # (n,) int: the offer drawn for each drawn customer, −1 elsewhere
    offers_open: np.ndarray  # (n,) int: how many offers the draw chose among (uplift > 0)
    inclusion: float  # probability that an eligible customer is drawn (drawn / eligible)
    spend: float  # money spent on the billable drawn
    contacts: int  # billable drawn


def draw_exploration(customer_ids: np.ndarray, campaign_id: str, uplift: np.ndarray, unit_cost: np.ndarray,
                     billable: np.ndarray, budget: float, max_contacts: int | None) -> Exploration:
    """Customers in stable-hash order, each with a uniformly drawn offer among those with uplift > 0,
    taken until the next billable one would overrun ``budget`` or ``max_contacts``."""
    with np.errstate(invalid="ignore"):
        open_ = np.asarray(uplift, float) > 0
    n = len(customer_ids)
    offers_open = open_.sum(axis=1)
    eligible = np.flatnonzero(offers_open > 0)
    drawn, offer = np.zeros(n, bool), np.full(n, -1)
    if budget <= 0 or not len(eligible) or (max_contacts is not None and max_contacts <= 0):
        return Exploration(drawn, offer, offers_open, 0.0, 0.0, 0)

    # the offer: the floor(u × m)-th of the customer's m open offers, in catalog order
    u_offer = hash_uniform(customer_ids[eligible], f"{campaign_id}/exploration-offer")
    nth = np.minimum((u_offer * offers_open[eligible]).astype(int), offers_open[eligible] - 1)
    rank = np.cumsum(open_[eligible], axis=1) - 1
    offer[eligible] = np.argmax(open_[eligible] & (rank == nth[:, None]), axis=1)

    # the customers: in the order of another stable hash, as long as money and contacts last
    order = eligible[np.argsort(hash_uniform(customer_ids[eligible], f"{campaign_id}/exploration"), kind="stable")]
    pays = np.asarray(billable, bool)[order]
    spent = np.cumsum(np.where(pays, np.asarray(unit_cost, float)[offer[order]], 0.0))
    contacts = np.cumsum(pays)
    fits = spent <= budget * (1 + 1e-12)
    if max_contacts is not None:
        fits &= contacts <= max_contacts
    taken = len(order) if fits.all() else int(np.argmin(fits))  # cumulative sums: fits is a prefix
    drawn[order[:taken]] = True
    offer[~drawn] = -1
    return Exploration(drawn, offer, offers_open, taken / len(eligible),
                       float(spent[taken - 1]) if taken else 0.0, int(contacts[taken - 1]) if taken else 0)


# ---- assignment and propensity ---------------------------------------------------------------------


def propensities(assignment: np.ndarray, offer: np.ndarray, policy_offer: np.ndarray, offers_open: np.ndarray,
                 control_share: float, inclusion: float) -> np.ndarray:
    """P(the row's treatment | customer) under the design: control hash (share c), exploration
    sample (inclusion q, offer uniform among the m open ones), else the policy's choice g.

    - targeted (offer g): ``(1 − c) × ((1 − q) + q / m)``
    - exploration (offer j): ``(1 − c) × (q / m + (1 − q) × [g = j])``
    - control (no contact): ``c + (1 − c) × (1 − q) × [g = none]``
    """
    c, q = float(control_share), float(inclusion)
    m = np.maximum(np.asarray(offers_open, float), 1.0)
    same = (np.asarray(policy_offer) == np.asarray(offer)).astype(float)
    nothing = (np.asarray(policy_offer) < 0).astype(float)
    return np.select(
        [assignment == "targeted", assignment == "exploration", assignment == "control"],
        [(1 - c) * ((1 - q) + q / m), (1 - c) * (q / m + (1 - q) * same), c + (1 - c) * (1 - q) * nothing],
        default=np.nan)
