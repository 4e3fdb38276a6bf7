"""The latent day-by-day process: who drops out, who orders, who browses.

The per-day formulas (``hazard``, ``order_rate``, ``browse_rate``, ``z_next``,
``campaign_eligible``) are shared with :mod:`.truth`, which replays the same process forward
analytically. Keeping them in one place is what makes the published truth honest: the
probabilities in ``_truth/`` come from exactly the rules that generated the data.

One simulated day ``t``, for every signed-up customer (vectorised, customers in signup order):

1. dropout: an alive customer dies with probability ``hazard`` (then nothing more happens);
2. order: an alive customer orders with probability ``1 - exp(-order_rate)``; each order draws
   an experience quality, its status, a latent rating, maybe a written review and a ticket;
3. browsing: ``Poisson(browse_rate)`` browsing-only sessions (capped at 2 a day);
4. engagement: ``z`` moves a fixed share towards the customer's level, plus the shocks of
   today's order experiences; the level falls slowly with tenure (fatigue) and keeps a share
   of every shock for good (a "scar": a bad experience is never quite forgotten);
5. grievance: decays, plus today's bad experiences (what a service-recovery call repairs);
6. campaigns (at the end of the day, see :mod:`.campaigns`): the shop's own, then any injected
   campaign file; a treated customer's hazard and purchase rate are scaled by its effect
   ``tau`` (:mod:`.offers`) on days ``t+1 .. t+effect_days``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .calendar import Calendar
from .campaigns import CampaignRecord, Injection, apply_injection, run_shop_campaign
from .offers import grievance_decay
from .params import ShopModel
from .world import Customers

COMPLETED, CANCELLED, RETURNED = 0, 1, 2


# ---- the shared per-day formulas ------------------------------------------------------------


def hazard(h0: np.ndarray, z: np.ndarray, tau_now: np.ndarray, m: ShopModel) -> np.ndarray:
    """Daily dropout probability: lower when engaged (z high) or treated by a campaign."""
    return np.minimum(m.hazard_cap, h0 * np.exp(-m.hazard_z_coef * z - tau_now))


def order_rate(lam: np.ndarray, z: np.ndarray, tau_now: np.ndarray, season: float,
               m: ShopModel) -> np.ndarray:
    """Expected orders today if alive (P(order) = 1 - exp(-rate))."""
    return lam * season * np.exp(m.order_z_coef * z + m.campaign_order_coef * tau_now)


def browse_rate(rho: np.ndarray, z: np.ndarray, alive: np.ndarray, season: float,
                m: ShopModel) -> np.ndarray:
    """Expected browsing-only sessions today; the dropped-out keep a small residual rate."""
    rate = rho * season * np.exp(m.browse_z_coef * z)
    return np.where(alive, rate, m.dead_browse_share * rho * season)


def z_level(c: Customers, scar: np.ndarray, day: int) -> np.ndarray:
    """The level z reverts to: personal level, minus fatigue with tenure, plus kept shocks."""
    return c.m0 + scar - c.fatigue * ((day - c.signup_day) / 365.0)


def z_next(z: np.ndarray, level: np.ndarray, m: ShopModel) -> np.ndarray:
    return z + m.z_reversion * (level - z)


def tau_now(until: np.ndarray, tau: np.ndarray, day: int) -> np.ndarray:
    """The campaign effect acting today (0 outside a treatment window)."""
    return np.where(until >= day, tau, 0.0)


# ---- what the simulation records -------------------------------------------------------------


@dataclass
class State:
    """The latent dynamic state of a set of customers at the end of ``day`` (after its z update)."""
    day: int
    z: np.ndarray  # engagement
    scar: np.ndarray  # shocks kept in the level for good
    alive: np.ndarray
    last_completed: np.ndarray  # day of the last completed order, -1 if none
    last_order: np.ndarray  # day of the last order of any status, -1 if none (active = >= 0)
    camp_until: np.ndarray  # last day a campaign treatment acts, -1 if never treated
    camp_tau: np.ndarray  # that treatment's effect
    grievance: np.ndarray  # recent bad experiences, decaying (what service recovery repairs)

    @classmethod
    def empty(cls, n: int) -> "State":
        return cls(-1, np.zeros(n), np.zeros(n), np.zeros(n, bool), np.full(n, -1, np.int32),
                   np.full(n, -1, np.int32), np.full(n, -1, np.int32), np.zeros(n), np.zeros(n))

    def take(self, rows: slice | np.ndarray) -> "State":
        """A copy of the state of ``rows``."""
        return State(self.day, *(np.array(getattr(self, f)[rows]) for f in _STATE_ARRAYS))

    def view(self, rows: slice) -> "State":
        """The state of a slice of customers, sharing memory (updates write through)."""
        return State(self.day, *(getattr(self, f)[rows] for f in _STATE_ARRAYS))


_STATE_ARRAYS = ("z", "scar", "alive", "last_completed", "last_order", "camp_until", "camp_tau",
                 "grievance")


@dataclass
class History:
    orders: dict[str, np.ndarray]  # cust, day, status, rating, reviewed, ticket, unresolved, offer
    sessions: dict[str, np.ndarray]  # browsing-only sessions: cust, day, z (engagement then)
    campaigns: list[CampaignRecord]  # the shop's own and the injected, in contact order
    snapshots: dict[int, State] = field(default_factory=dict)
    death_day: np.ndarray | None = None


class _Recorder:
    """Collects per-day arrays and concatenates them once at the end."""

    def __init__(self, columns: dict[str, type]):
        self._dtypes = columns
        self._parts: dict[str, list[np.ndarray]] = {k: [] for k in columns}

    def add(self, **arrays: np.ndarray) -> None:
        for k, v in arrays.items():
            self._parts[k].append(np.asarray(v, dtype=self._dtypes[k]))

    def result(self) -> dict[str, np.ndarray]:
        return {k: (np.concatenate(v) if v else np.zeros(0, self._dtypes[k]))
                for k, v in self._parts.items()}


# ---- the simulation --------------------------------------------------------------------------


def simulate(c: Customers, cal: Calendar, m: ShopModel, rng: np.random.Generator,
             snapshot_days: set[int], injections: dict[int, list[Injection]] | None = None
             ) -> History:
    """Run the latent process over all days; record orders, sessions, campaigns, snapshots.

    ``injections`` (campaign files, by contact day) are applied after the shop's own campaign
    of the day and consume no randomness, so without them the run is the plain generator's and
    with them everything before their day is unchanged. Snapshots are taken before them.
    """
    injections = injections or {}
    n_signed = np.searchsorted(c.signup_day, np.arange(cal.n_days), side="right")
    state = State.empty(c.n)
    camp_offer = np.full(c.n, -1, dtype=np.int8)  # offer of the treatment acting
    death_day = np.full(c.n, -1, dtype=np.int32)
    decay = grievance_decay(m.grievance_half_life)
    orders = _Recorder(dict(cust=np.int32, day=np.int32, status=np.int8, rating=np.int8,
                            reviewed=bool, ticket=bool, unresolved=bool, offer=np.int8))
    sessions = _Recorder(dict(cust=np.int32, day=np.int32, z=np.float32))
    campaigns: list[CampaignRecord] = []
    snapshots: dict[int, State] = {}
    campaign_no = {d: i for i, d in enumerate(cal.campaign_days)}

    n = 0
    for t in range(cal.n_days):
        n_before, n = n, int(n_signed[t])
        if n > n_before:  # today's signups start alive and in their honeymoon
            state.z[n_before:n] = c.m0[n_before:n] + m.z_honeymoon
            state.alive[n_before:n] = True
        state.day = t
        if n == 0:  # nobody has signed up yet
            if t in snapshot_days:
                snapshots[t] = state.take(slice(0, 0))
            continue
        cs, st = c.subset(slice(0, n)), state.view(slice(0, n))
        tau_t = tau_now(st.camp_until, st.camp_tau, t)

        # 1. dropout
        dies = st.alive & (rng.random(n) < hazard(cs.h0, st.z, tau_t, m))
        st.alive[dies] = False
        death_day[:n][dies] = t

        # 2. orders
        rate = order_rate(cs.lam, st.z, tau_t, cal.order_season[t], m)
        rate[n_before:n] += m.first_day_order_rate
        buyers = np.flatnonzero(st.alive & (rng.random(n) < -np.expm1(-rate)))
        outcome = _order_outcomes(c, buyers, st.z[buyers], rng, m)
        in_treatment = st.camp_until[buyers] >= t
        orders.add(cust=buyers, day=np.full(len(buyers), t),
                   offer=np.where(in_treatment, camp_offer[buyers], -1), **outcome.record)
        st.last_completed[buyers[outcome.record["status"] == COMPLETED]] = t
        st.last_order[buyers] = t

        # 3. browsing-only sessions
        k = _poisson_upto2(rng.random(n), browse_rate(cs.rho, st.z, st.alive,
                                                      cal.browse_season[t], m))
        visitors = np.concatenate([np.flatnonzero(k >= 1), np.flatnonzero(k >= 2)])
        sessions.add(cust=visitors, day=np.full(len(visitors), t), z=st.z[visitors])

        # 4. engagement
        st.z[:] = z_next(st.z, z_level(cs, st.scar, t), m)
        st.z[buyers] += outcome.shock
        st.scar[buyers] += m.scar_share * outcome.shock

        # 5. grievance
        st.grievance *= decay
        st.grievance[buyers] += outcome.grievance

        # 6. campaigns at the end of the day
        if t in campaign_no:
            campaigns.append(run_shop_campaign(c, campaign_no[t], st, rng, m))
            _start_offers(camp_offer, campaigns[-1])
        if t in snapshot_days:
            snapshots[t] = st.take(slice(0, n))
        for inj in injections.get(t, ()):
            campaigns.append(apply_injection(c, inj, st, m))
            _start_offers(camp_offer, campaigns[-1])

    return History(orders.result(), sessions.result(), campaigns, snapshots, death_day)


def _start_offers(camp_offer: np.ndarray, rec: CampaignRecord) -> None:
    treated = ~rec.is_control
    camp_offer[rec.customers[treated]] = rec.offer[treated]


def _poisson_upto2(u: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """Poisson(rate) by inverse CDF from one uniform, truncated at 2 (rates are small)."""
    p0 = np.exp(-rate)
    return (u > p0).astype(np.int8) + (u > p0 * (1 + rate))


@dataclass
class _Outcome:
    record: dict[str, np.ndarray]
    shock: np.ndarray
    grievance: np.ndarray


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _order_outcomes(c: Customers, buyers: np.ndarray, z: np.ndarray, rng: np.random.Generator,
                    m: ShopModel) -> _Outcome:
    """Experience of each order and the engagement shock it causes.

    All of it is decided on the order day, so the latent state at the end of a day already
    holds every consequence of the orders so far (the review or ticket shows up days later).
    """
    k = len(buyers)
    q = c.quality[buyers] + m.experience_z_coef * z + rng.standard_normal(k)
    u_status = rng.random(k)
    p_cancel = _sigmoid(m.cancel_logit[0] + m.cancel_logit[1] * q)
    p_return = _sigmoid(m.return_logit[0] + m.return_logit[1] * q)
    status = np.where(u_status < p_cancel, CANCELLED,
                      np.where(u_status < p_cancel + p_return, RETURNED, COMPLETED)).astype(np.int8)
    rating = np.clip(np.round(m.rating_base + m.rating_slope * q
                              + m.rating_noise_sd * rng.standard_normal(k)), 1, 5).astype(np.int8)
    extreme = (rating <= 2) | (rating == 5)
    reviewed = rng.random(k) < m.review_share + m.review_share_extreme * extreme
    ticket = rng.random(k) < _sigmoid(m.ticket_logit[0] + m.ticket_logit[1] * q) + 0.25 * (status != COMPLETED)
    unresolved = ticket & (rng.random(k) < m.ticket_unresolved_share)
    shock = (m.shock_good_order * ((status == COMPLETED) & (rating >= 4))
             + m.shock_cancelled * (status == CANCELLED)
             + m.shock_returned * (status == RETURNED)
             + m.shock_bad_rating * (rating <= 2)
             + m.shock_unresolved_ticket * unresolved
             + m.shock_resolved_ticket * (ticket & ~unresolved))
    grievance = (m.grievance_bad_rating * (rating <= 2)
                 + m.grievance_unresolved_ticket * unresolved
                 + m.grievance_resolved_ticket * (ticket & ~unresolved)
                 + m.grievance_cancelled * (status == CANCELLED)
                 + m.grievance_returned * (status == RETURNED))
    return _Outcome(dict(status=status, rating=rating, reviewed=reviewed, ticket=ticket,
                         unresolved=unresolved), shock, grievance)
