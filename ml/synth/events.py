"""The clickstream: sessions expanded into events, a chunk of days at a time.

Two kinds of session exist. Every order is the end of a *purchase session* that runs the whole
funnel (maybe login, maybe search, views, add_to_cart, checkout, purchase) and ends at the
order's timestamp, so browsing visibly precedes buying. *Browsing-only sessions* come from the
simulation (their rate follows engagement, so they thin out before a customer drops out) and
stop part-way down the funnel.

Events dominate the data volume (~50 per customer), so they are expanded with ``np.repeat``
and written a chunk of days at a time; each day draws from its own random stream, so what
happens on one day never changes the events of another (see :mod:`.streams`).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from .calendar import Calendar
from .dynamics import History
from .io import SourceWriter, padded_ids, pick, timestamps
from .params import ShopModel
from .tables import (BROWSE_HOURS, US, Orders, not_before_signup, sample_categories,
                     seconds_of_day)
from .world import DEVICES, Catalog, Customers

CHUNK_DAYS = 30
# event codes in funnel order; EVENT_NAMES maps them to the contract's event_type values
LOGIN, SEARCH, VIEW, ADD_TO_CART, CHECKOUT, PURCHASE = range(6)
EVENT_NAMES = ("login", "search", "view", "add_to_cart", "checkout", "purchase")
_LOGIN_SHARE = np.array([0.7, 0.3, 0.35, 0.3])  # by device: app sessions usually start with login


def write_events(writer: SourceWriter, hist: History, orders: Orders, c: Customers,
                 catalog: Catalog, cal: Calendar, model: ShopModel, cust_ids: pa.Array,
                 seed: int) -> None:
    """Generate and write every event dated on or before end_date, chunk by chunk."""
    browse = hist.sessions
    seen = browse["day"] < cal.observed_days
    b_cust, b_day, b_z = browse["cust"][seen], browse["day"][seen], browse["z"][seen]  # by day
    product_ids = padded_ids(np.arange(catalog.n_products), 6, prefix="P")
    # each day's rows, found once (a search per day would convert the whole array every time)
    b_at = np.searchsorted(b_day, np.arange(cal.observed_days + 1))
    o_at = np.searchsorted(orders.day, np.arange(cal.observed_days + 1))
    next_session = 1
    for d0 in range(0, cal.observed_days, CHUNK_DAYS):
        days = []
        for day in range(d0, min(d0 + CHUNK_DAYS, cal.observed_days)):
            rng = np.random.default_rng([seed, 0xE7E, day])
            b, o = slice(b_at[day], b_at[day + 1]), slice(o_at[day], o_at[day + 1])
            sessions = _sessions(b_cust[b], b_day[b], b_z[b], orders, o, c, cal, model, rng)
            if len(sessions["cust"]):
                days.append((len(sessions["cust"]), _expand(sessions, c, catalog, cal, rng)))
        if not days:
            continue
        offsets = np.cumsum([0] + [n for n, _ in days])
        cols = {k: np.concatenate([d[k] for _, d in days]) for k in days[0][1]}
        cols["session"] = np.concatenate([d["session"] + off for (_, d), off in zip(days, offsets)])
        session_ids = padded_ids(np.arange(next_session, next_session + offsets[-1]), 10, prefix="S")
        next_session += int(offsets[-1])
        writer.write(dict(
            customer_id=cust_ids.take(pa.array(cols["cust"])),
            event_ts=timestamps(cols["ts"]),
            event_type=pick(list(EVENT_NAMES), cols["type"]),
            session_id=session_ids.take(pa.array(cols["session"])),
            product_id=pick(product_ids, cols["product"]),
            device=pick(list(DEVICES), cols["device"]),
        ))


def _sessions(b_cust, b_day, b_z, orders: Orders, o: slice, c: Customers, cal: Calendar,
              m: ShopModel, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The chunk's sessions, purchase and browsing-only, in time order, with their funnels."""
    n_b, n_o = len(b_cust), o.stop - o.start
    cust = np.concatenate([orders.cust[o], b_cust]).astype(np.int32)
    purchase = np.arange(n_o + n_b) < n_o
    # purchase sessions are anchored at their end (the order), browsing ones at their start
    second = not_before_signup(seconds_of_day(BROWSE_HOURS, n_b, rng), b_cust, b_day, c, 60,
                               23 * 3600, rng)
    anchor = np.concatenate([orders.ts_us[o], cal.day_start_us(b_day) + second * US])
    first_product = np.concatenate([orders.first_product[o], np.full(n_b, -1, np.int32)])
    z = np.concatenate([np.zeros(n_o, np.float32), b_z])
    order = np.argsort(anchor, kind="stable")
    cust, purchase, anchor, first_product, z = (
        cust[order], purchase[order], anchor[order], first_product[order], z[order])

    device = np.where(rng.random(len(cust)) < 0.8, c.device[cust], rng.integers(0, 4, len(cust)))
    funnel = _funnel(purchase, device, z, m, rng)
    gaps, duration = _gaps(funnel["n_events"], rng)
    start = np.where(purchase, anchor - duration * US, anchor)
    return dict(cust=cust, purchase=purchase, start=start, device=device,
                first_product=first_product, gaps=gaps, **funnel)


def _funnel(purchase: np.ndarray, device: np.ndarray, z: np.ndarray, m: ShopModel,
            rng: np.random.Generator) -> dict:
    """How far down the funnel each session goes (counts per event type).

    A purchase session runs the whole funnel. A browsing-only session is often just a visit
    (a login / app open, one event), the more often the lower the engagement ``z`` then;
    otherwise it views a product or two and may put one in the cart, again the more likely the
    lower ``z`` (shallow visits and abandoned carts lead a dropout).
    """
    k = len(purchase)
    share = m.browse_visit_only_share
    p_visit = 1.0 / (1.0 + np.exp(-(np.log(share / (1 - share)) - m.browse_depth_z_coef * z)))
    visit_only = ~purchase & (rng.random(k) < p_visit)
    login = visit_only | (rng.random(k) < _LOGIN_SHARE[device] * np.where(purchase, 0.5, 1.0))
    search = ~visit_only & (rng.random(k) < 0.2)
    views = np.where(visit_only, 0, 1 + np.minimum(rng.poisson(np.where(purchase, 0.2, 0.4)), 5))
    p_cart = 1.0 / (1.0 + np.exp(-(m.browse_cart_logit[0] + m.browse_cart_logit[1] * z)))
    cart = purchase | (~visit_only & (rng.random(k) < p_cart))
    checkout = purchase | (cart & (rng.random(k) < 0.2))
    counts = np.stack([login, search, views, cart, checkout, purchase]).astype(np.int32)
    return dict(counts=counts.T, n_events=counts.sum(axis=0))


def _gaps(n_events: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Seconds from one event to the next (the first event of a session has gap 0)."""
    total = int(n_events.sum())
    gaps = np.minimum(5 + rng.exponential(40.0, total), 300).astype(np.int64)
    first = np.cumsum(n_events) - n_events
    gaps[first[n_events > 0]] = 0
    duration = np.add.reduceat(gaps, first) if total else np.zeros(0, np.int64)
    return gaps, duration


def _expand(s: dict[str, np.ndarray], c: Customers, catalog: Catalog, cal: Calendar,
            rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One row per event, in funnel order within each session; times from the gaps."""
    counts, n_events = s["counts"], s["n_events"]
    session = np.repeat(np.arange(len(n_events), dtype=np.int32), n_events)
    etype = np.repeat(np.tile(np.arange(6, dtype=np.int8), len(n_events)), counts.ravel())
    first = np.cumsum(n_events) - n_events

    offset = np.cumsum(s["gaps"])
    offset -= offset[first][session]
    ts = s["start"][session] + offset * US

    cust = s["cust"][session]
    product = np.full(len(session), -1, np.int32)
    browsed = np.flatnonzero((etype == VIEW) | (etype == ADD_TO_CART))
    product[browsed] = catalog.sample_products(
        sample_categories(c.favourite[cust[browsed]], catalog, rng), rng)
    # in a purchase session the last view, the cart and the purchase are the ordered product
    ps = np.flatnonzero(s["purchase"])
    last_view = first[ps] + counts[ps, LOGIN] + counts[ps, SEARCH] + counts[ps, VIEW] - 1
    for row in (last_view, last_view + 1, first[ps] + n_events[ps] - 1):
        product[row] = s["first_product"][ps]
    return dict(cust=cust, ts=ts, type=etype, session=session, product=product,
                device=s["device"][session])
