"""From the simulated history to the source tables of the raw contract (except events).

The simulation decides *what* happened on which day (who ordered, how it went, who was
contacted); this module dresses it up as shop exports: times of day, ids, baskets, prices,
coupons, review and ticket timestamps, customer profiles with fake PII. Anything dated after
``end_date`` is dropped here (a ticket still open at the export has no ``resolved_ts``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .calendar import Calendar
from .dynamics import CANCELLED, RETURNED, History
from .io import numbers, padded_ids, pick, timestamps, with_nulls
from .offers import OFFER_DISCOUNT, OFFERS
from .params import ShopModel
from .streams import DayStreams, by_day
from .world import ACQUISITION, CATEGORIES, Catalog, Customers

US = 1_000_000
STATUS_NAMES = ("completed", "cancelled", "returned")
# share of the day's activity by hour; orders never fall before 01:00 and browsing sessions
# never start after 23:00, so a session never crosses midnight
_HOURLY = np.array([0.3, 0.15, 0.1, 0.08, 0.08, 0.15, 0.4, 0.8, 1.1, 1.2, 1.3, 1.4,
                    1.6, 1.5, 1.3, 1.3, 1.4, 1.6, 1.9, 2.2, 2.4, 2.1, 1.5, 0.8])
ORDER_HOURS = np.where(np.arange(24) == 0, 0.0, _HOURLY) / _HOURLY[1:].sum()
BROWSE_HOURS = np.where(np.arange(24) == 23, 0.0, _HOURLY) / _HOURLY[:23].sum()
GENERIC_COUPONS = ("WELCOME5", "SAVE5", "SPRING10", "LOYAL10")
_GENERIC_DISCOUNT = np.array([0.05, 0.05, 0.10, 0.10])


def seconds_of_day(hour_weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    hour = rng.choice(24, n, p=hour_weights)
    return hour * 3600 + rng.integers(0, 3600, n)


def not_before_signup(second: np.ndarray, cust: np.ndarray, day: np.ndarray, c: Customers,
                      lead: int, day_end: int, rng: np.random.Generator) -> np.ndarray:
    """On a customer's signup day, move activity into [signup + lead, day_end): none precedes it."""
    first_day = day == c.signup_day[cust]
    low = c.signup_second[cust[first_day]] + lead
    second = second.copy()
    second[first_day] = low + (rng.random(len(low)) * (day_end - low)).astype(second.dtype)
    return second


def customer_ids(n: int, rng: np.random.Generator) -> pa.Array:
    """Opaque numeric ids, zero-padded: about half of them carry leading zeros ('0004217')."""
    width = len(str(20 * n))
    number = rng.permutation(n).astype(np.int64) * 20 + rng.integers(1, 20, n)
    return padded_ids(number, width)


def sample_categories(favourite: np.ndarray, catalog: Catalog, rng: np.random.Generator) -> np.ndarray:
    """One category per row: 75% one of the customer's 3 favourites (50/30/20), else by popularity."""
    k = len(favourite)
    u = rng.random(k)
    which = (u > 0.5).astype(np.intp) + (u > 0.8)
    fav = favourite[np.arange(k), which]
    return np.where(rng.random(k) < 0.75, fav, catalog.sample_categories(k, rng)).astype(np.int8)


# ---- orders and their lines ----------------------------------------------------------------------


@dataclass
class Orders:
    """Observed orders (dated on or before end_date), sorted by time, with what events need."""
    cust: np.ndarray
    day: np.ndarray
    ts_us: np.ndarray
    first_product: np.ndarray
    raw: dict[str, np.ndarray]  # the simulation's per-order record, same row order
    ids: pa.Array


def build_orders(hist: History, c: Customers, catalog: Catalog, cal: Calendar, m: ShopModel,
                 cust_ids: pa.Array, streams: DayStreams
                 ) -> tuple[Orders, dict[str, pa.Array], dict[str, pa.Array]]:
    """The ``orders`` and ``order_items`` tables: baskets from preferences, amount = lines - discount."""
    rec = hist.orders
    seen = rec["day"] < cal.observed_days
    rec = {k: v[seen] for k, v in rec.items()}  # recorded day by day: already sorted by day

    def one_day(rows: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        cust, day = rec["cust"][rows], rec["day"][rows]
        second = not_before_signup(seconds_of_day(ORDER_HOURS, len(rows), rng), cust, day, c,
                                   3600, 86_400, rng)
        order = np.argsort(second, kind="stable")
        rows, cust, second = rows[order], cust[order], second[order]
        lines = 1 + np.minimum(rng.poisson(c.basket[cust]), 11)
        line_order = np.repeat(np.arange(len(rows)), lines)
        category = sample_categories(c.favourite[cust[line_order]], catalog, rng)
        product = catalog.sample_products(category, rng)
        quantity = (1 + np.minimum(rng.poisson(0.25, len(product)), 4)).astype(np.int32)
        subtotal = np.bincount(line_order, weights=quantity * catalog.list_price[product],
                               minlength=len(rows))
        coupon, discount = _coupons(rec["offer"][rows], c.price_sensitivity[cust], subtotal, m, rng)
        order_channel = np.where(c.device[cust] == 0, 1, 0)  # app users order in the app
        r = rng.random(len(rows))
        order_channel = np.where(r < 0.08, 2, np.where(r < 0.11, 3, order_channel))
        return dict(rows=rows, ts=cal.day_start_us(day) + second * US, lines=lines,
                    amount=np.round(subtotal - discount, 2), discount=np.round(discount, 2),
                    coupon=coupon, channel=order_channel, category=category, product=product,
                    quantity=quantity)

    o = by_day(rec["day"], streams, one_day)
    raw = {k: v[o["rows"]] for k, v in rec.items()}
    cust, n = raw["cust"], len(o["rows"])
    ids = padded_ids(np.arange(1, n + 1), 9, prefix="O")
    line_order = np.repeat(np.arange(n), o["lines"])
    first_line = np.cumsum(o["lines"]) - o["lines"]
    product_ids = padded_ids(np.arange(catalog.n_products), 6, prefix="P")
    orders_cols = dict(
        order_id=ids, customer_id=cust_ids.take(pa.array(cust)), order_ts=timestamps(o["ts"]),
        amount=numbers(o["amount"]), discount_amount=numbers(o["discount"]),
        coupon_code=pick(list(OFFERS) + list(GENERIC_COUPONS), o["coupon"]),
        status=pick(list(STATUS_NAMES), raw["status"]),
        channel=pick(["web", "app", "marketplace", "phone"], o["channel"]),
    )
    items_cols = dict(
        order_id=ids.take(pa.array(line_order)), product_id=product_ids.take(pa.array(o["product"])),
        category=pick(list(CATEGORIES), o["category"]), quantity=numbers(o["quantity"]),
        unit_price=numbers(catalog.list_price[o["product"]]),
    )
    return (Orders(cust, raw["day"], o["ts"], o["product"][first_line], raw, ids), orders_cols,
            items_cols)


def _coupons(offer: np.ndarray, price_sensitivity: np.ndarray, subtotal: np.ndarray,
             m: ShopModel, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Coupon index (offers first, then generic codes; -1 none) and discount per order.

    Orders placed while a coupon offer acts often redeem it (the price-sensitive more often),
    which lets the pipeline link campaigns to revenue; otherwise price-sensitive customers use
    generic codes. Recommendation and service offers carry no code.
    """
    n = len(subtotal)
    rate_of_offer = OFFER_DISCOUNT[np.maximum(offer, 0)]
    redeem = m.campaign_coupon_share * (0.5 + price_sensitivity)
    use_offer = (offer >= 0) & (rate_of_offer > 0) & (rng.random(n) < redeem)
    generic = rng.integers(0, len(GENERIC_COUPONS), n)
    generic_share = m.coupon_base_share * (price_sensitivity / 0.5) ** m.coupon_ps_exponent
    use_generic = ~use_offer & (rng.random(n) < generic_share)
    coupon = np.where(use_offer, offer, np.where(use_generic, len(OFFERS) + generic, -1))
    rate = np.where(use_offer, rate_of_offer, np.where(use_generic, _GENERIC_DISCOUNT[generic], 0.0))
    return coupon, subtotal * rate


# ---- what follows an order: reviews and support tickets ------------------------------------------


def build_reviews(o: Orders, cal: Calendar, cust_ids: pa.Array,
                  streams: DayStreams) -> dict[str, pa.Array]:
    """A review 1-14 days after some orders; the rating was decided with the order's experience."""
    reviewed = np.flatnonzero(o.raw["reviewed"])

    def one_day(i: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        lag = rng.integers(1, 15, len(i)) * 86_400 + rng.integers(0, 86_400, len(i))
        return dict(rows=reviewed[i], ts=o.ts_us[reviewed[i]] + lag * US)

    r = by_day(o.day[reviewed], streams, one_day)
    keep = r["ts"] < cal.end_us
    rows, ts = r["rows"][keep], r["ts"][keep]
    return dict(customer_id=cust_ids.take(pa.array(o.cust[rows])), order_id=o.ids.take(pa.array(rows)),
                review_ts=timestamps(ts), rating=numbers(o.raw["rating"][rows].astype(np.int32)))


def build_tickets(o: Orders, cal: Calendar, cust_ids: pa.Array,
                  streams: DayStreams) -> dict[str, pa.Array]:
    """Tickets opened within a week of a troubled order; some never get resolved.

    A ticket's id follows its order's (at most one ticket per order), so a longer export of the
    same shop keeps the ids it had.
    """
    troubled = np.flatnonzero(o.raw["ticket"])

    def one_day(i: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        k = len(i)
        return dict(rows=troubled[i],
                    opened=o.ts_us[troubled[i]] + rng.integers(600, 7 * 86_400, k) * US,
                    took=(600 + rng.exponential(36 * 3600, k).astype(np.int64)) * US,
                    other_topic=rng.choice([2, 3, 4, 5], k, p=[0.45, 0.3, 0.15, 0.1]),
                    noise=rng.normal(0, 0.8, k), unanswered=rng.random(k) < 0.4)

    t = by_day(o.day[troubled], streams, one_day)
    keep = t["opened"] < cal.end_us
    t = {key: value[keep] for key, value in t.items()}
    rows, opened = t["rows"], t["opened"]
    status, rating = o.raw["status"][rows], o.raw["rating"][rows]
    resolved = opened + t["took"]
    open_at_export = o.raw["unresolved"][rows] | (resolved >= cal.end_us)
    topic = np.where(status == CANCELLED, 0, np.where(status == RETURNED, 1, t["other_topic"]))
    satisfaction = np.clip(np.round(3.2 + 0.45 * (rating - 3.0) + t["noise"]), 1, 5).astype(np.int32)
    return dict(
        customer_id=cust_ids.take(pa.array(o.cust[rows])),
        ticket_id=padded_ids(rows + 1, 9, prefix="T"),
        opened_ts=timestamps(opened), resolved_ts=timestamps(resolved, null=open_at_export),
        topic=pick(["cancellation", "return_refund", "delivery", "product_quality", "payment",
                    "account"], topic),
        satisfaction=numbers(satisfaction, null=open_at_export | t["unanswered"]),
    )


# ---- customers -------------------------------------------------------------------------------------


_COUNTRIES = ("GB", "DE", "FR", "NL", "ES", "IT", "PL", "SE")
_COUNTRY_WEIGHTS = np.array([0.3, 0.2, 0.15, 0.08, 0.1, 0.08, 0.05, 0.04])
_DIAL = ("+44", "+49", "+33", "+31", "+34", "+39", "+48", "+46")
_REGIONS = ("north", "south", "east", "west", "central")
_FIRST = ("anna", "ben", "chloe", "david", "emma", "felix", "grace", "hugo", "ines", "jonas",
          "karin", "liam", "mia", "noah", "olga", "paul", "rosa", "sam", "tara", "umar",
          "vera", "will", "yara", "zoe")
_LAST = ("smith", "muller", "martin", "jansen", "garcia", "rossi", "nowak", "berg", "jones",
         "schmidt", "bernard", "visser", "lopez", "russo", "kowalski", "lind", "brown", "weber")
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example")


def build_customers_table(c: Customers, cal: Calendar, cust_ids: pa.Array,
                          rng: np.random.Generator) -> dict[str, pa.Array]:
    """Profiles with fake PII: emails on example domains, phone numbers that ring nowhere."""
    n = c.n
    country = rng.choice(len(_COUNTRIES), n, p=_COUNTRY_WEIGHTS)
    signup = cal.day_start_us(c.signup_day) + c.signup_second.astype(np.int64) * US
    gender = rng.choice(4, n, p=[0.48, 0.46, 0.02, 0.04])  # the last: not given
    email = pc.binary_join_element_wise(
        pick(list(_FIRST), rng.integers(0, len(_FIRST), n), dense=True), ".",
        pick(list(_LAST), rng.integers(0, len(_LAST), n), dense=True),
        pa.array(rng.integers(1, 1000, n)).cast(pa.string()), "@",
        pick(list(_DOMAINS), rng.integers(0, len(_DOMAINS), n), dense=True), "")
    phone = pc.binary_join_element_wise(
        pick(list(_DIAL), country, dense=True), " 7",
        pa.array(rng.integers(10**8, 10**9, n)).cast(pa.string()), "")
    return dict(
        customer_id=cust_ids, signup_ts=timestamps(signup),
        country=pick(list(_COUNTRIES), country),
        region=pc.binary_join_element_wise(pick(list(_COUNTRIES), country, dense=True),
                                           pick(list(_REGIONS), rng.integers(0, 5, n), dense=True),
                                           "-"),
        age=numbers(c.age.astype(np.int32), null=rng.random(n) < 0.05),
        gender=pick(["F", "M", "X", "?"], gender, null=gender == 3),
        acquisition_channel=pick(list(ACQUISITION), c.acquisition),
        email=with_nulls(email, rng.random(n) < 0.02),
        phone=with_nulls(phone, rng.random(n) < 0.15),
    )

