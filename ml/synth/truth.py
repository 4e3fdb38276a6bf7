"""The ground truth, computed from the same process that generated the data.

``P(no order in (t0, t0+H])`` for a customer whose latent state at the end of day ``t0`` is
known. Along the only path that matters — the one on which the customer places no order —
nothing random happens to the engagement ``z`` (shocks come only from orders), so ``z``, the
hazard and the purchase rate are deterministic functions of the day. The probability is then a
short recursion over the ``H`` days, vectorised over customers:

    P = sum_k  S_{k-1} * h_k  +  S_H,      S_k = S_{k-1} * (1 - h_k) * exp(-r_k),  S_0 = 1

(die on day k before ordering, having ordered on none of the earlier days; or stay alive and
order on none of the days). The one remaining source of randomness on that path is a campaign
inside the window: whether the customer is eligible is known along the path (their last
completed order does not change), whether they are picked and treated is a coin flip, so the
result is the mixture over treated / untreated branches of every campaign in the window.
A customer already dropped out at ``t0`` has probability 1.
"""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from .calendar import Calendar
from .campaigns import campaign_eligible, contact_effect, shop_contact
from .dynamics import State, hazard, order_rate, tau_now, z_level, z_next
from .offers import combine, grievance_decay
from .params import ShopModel
from .world import Customers


def prob_no_order(c: Customers, state: State, cal: Calendar, m: ShopModel,
                  horizon: int, rows: np.ndarray) -> np.ndarray:
    """P(no order in days t0+1 .. t0+horizon | latent state at the end of day t0).

    ``c`` holds the traits of the same customers, row for row, as ``state``; ``rows`` are their
    rows in the whole shop (the shop's offers are a hash of them).
    """
    t0 = state.day
    # a campaign at the end of day d acts from d+1 on: only those before the last day matter
    window = [(no, d) for no, d in enumerate(cal.campaign_days) if t0 < d < t0 + horizon]
    p_treated = [campaign_eligible(state.last_completed, d, m)
                 * (m.campaign_contact_share * (1 - m.campaign_control_share)) for _, d in window]
    total = np.zeros(len(state.z))
    for branch in itertools.product((False, True), repeat=len(window)):
        weight = np.ones(len(state.z))
        for treated, p in zip(branch, p_treated):
            weight *= p if treated else 1.0 - p
        sel = np.flatnonzero(weight > 0)
        if len(sel) == 0:
            continue
        treat_days = {d: no for (no, d), treated in zip(window, branch) if treated}
        total[sel] += weight[sel] * _no_order_on_path(c.subset(sel), state.take(sel), cal, m,
                                                      horizon, treat_days, rows[sel])
    return np.where(state.alive, total, 1.0)


def _no_order_on_path(c: Customers, state: State, cal: Calendar, m: ShopModel, horizon: int,
                      treat_days: dict[int, int], rows: np.ndarray) -> np.ndarray:
    """The recursion in the module docstring for one campaign branch."""
    z, scar, grievance = state.z.copy(), state.scar, state.grievance.copy()
    until, tau = state.camp_until.copy(), state.camp_tau.copy()
    decay = grievance_decay(m.grievance_half_life)
    survive_silent = np.ones(len(z))  # alive and no order so far
    p_none = np.zeros(len(z))
    for day in range(state.day + 1, state.day + horizon + 1):
        tau_t = tau_now(until, tau, day)
        h = hazard(c.h0, z, tau_t, m)
        r = order_rate(c.lam, z, tau_t, cal.order_season[day], m)
        p_none += survive_silent * h
        survive_silent *= (1.0 - h) * np.exp(-r)
        z = z_next(z, z_level(c, scar, day), m)
        grievance *= decay
        if day in treat_days:
            offer, channel = shop_contact(c, rows, treat_days[day])
            path = dataclasses.replace(state, z=z, grievance=grievance, camp_until=until)
            until, tau = combine(until, tau, day, contact_effect(c, path, day, offer, channel, m),
                                 m.campaign_effect_days)
    return p_none + survive_silent


def churn_truth(c: Customers, state: State, cal: Calendar, m: ShopModel,
                horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Customers active at the snapshot and their true churn probability.

    Active as the pipeline (and its dbt labels) define it: at least one order of any status on
    or before the snapshot day; churn is no order of any status in the window.
    """
    active = np.flatnonzero(state.last_order >= 0)
    p = prob_no_order(c.subset(active), state.take(active), cal, m, horizon, active)
    return active, p


def retention_if_contacted(c: Customers, before: State, rows: np.ndarray, offer: np.ndarray,
                           channel: np.ndarray, cal: Calendar, m: ShopModel,
                           horizon: int) -> np.ndarray:
    """P(an order in days t0+1 .. t0+horizon) if contacted with ``offer`` via ``channel`` at t0.

    ``before`` is the customers' state at the end of t0, before any contact that day.
    """
    until, tau = combine(before.camp_until, before.camp_tau, before.day,
                         contact_effect(c, before, before.day, offer, channel, m), m.campaign_effect_days)
    treated = dataclasses.replace(before, camp_until=until, camp_tau=tau)
    return 1.0 - prob_no_order(c, treated, cal, m, horizon, rows)


def campaign_effect(c: Customers, rec, cal: Calendar, m: ShopModel,
                    horizon: int) -> dict[str, np.ndarray]:
    """Per contacted customer: P(order in (c, c+H]) if treated and if held out.

    Both are computed from the customer's state just before the assignment, so their difference
    is the true individual effect of being treated (on retention within the horizon).
    """
    cs = c.subset(rec.customers)
    if_treated = retention_if_contacted(cs, rec.before, rec.customers, rec.offer, rec.channel,
                                        cal, m, horizon)
    if_control = 1.0 - prob_no_order(cs, rec.before, cal, m, horizon, rec.customers)
    return dict(if_treated=if_treated, if_control=if_control)
