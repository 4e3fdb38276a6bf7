"""The static world: who the customers are and what the shop sells.

Everything here is drawn once per run and never changes: the catalog (products, categories,
prices, popularity) and, per customer, the observable profile (country, age, channel, ...) and
the hidden traits that drive behaviour (purchase rate, dropout hazard, browsing rate,
engagement level and fatigue, basket size, price sensitivity, campaign response).

Customers are stored in signup order, so on day ``t`` the signed-up customers are the prefix
``[0, n_signed[t])`` and the daily simulation can work on array views instead of masks.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .params import ShopModel

CATEGORIES = (
    "electronics", "fashion", "home", "beauty", "sports", "toys", "books", "grocery", "garden",
    "pets", "baby", "automotive", "health", "jewelry", "shoes", "music", "office", "kitchen",
    "outdoors", "gaming",
)
DEVICES = ("mobile_app", "mobile_web", "desktop", "tablet")
ACQUISITION = ("organic", "paid_search", "social", "referral", "email", "affiliate")
# Some channels bring loyal customers, others bargain hunters: a multiplier on the hazard.
_ACQ_WEIGHTS = np.array([0.32, 0.24, 0.18, 0.10, 0.08, 0.08])
_ACQ_HAZARD = np.array([0.85, 1.05, 1.35, 0.7, 0.9, 1.25])
_ACQ_RATE = np.array([1.1, 0.9, 0.8, 1.25, 1.1, 0.85])  # ... and buy more or less often
_DEVICE_WEIGHTS = np.array([0.35, 0.3, 0.3, 0.05])
_DEVICE_BROWSE = np.array([1.4, 1.0, 0.8, 0.9])  # app users browse more
CONTACT_CHANNELS = ("email", "sms", "push")  # the shop's own campaigns reach customers this way
_CONTACT_WEIGHTS = np.array([0.55, 0.25, 0.20])


POPULARITY_STEPS = 1024  # product popularity is resolved to 1/1024 within a category


@dataclass(frozen=True)
class Catalog:
    product_category: np.ndarray  # int8 category index per product
    list_price: np.ndarray  # float64
    category_popularity: np.ndarray  # probabilities over categories
    category_cdf: np.ndarray  # cumulative category_popularity
    popularity_table: np.ndarray  # (categories, POPULARITY_STEPS): product at each quantile

    @property
    def n_products(self) -> int:
        return len(self.product_category)

    def sample_products(self, category: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A product of each given category, drawn by within-category (Zipf) popularity.

        A lookup in a quantile table instead of a search: O(1) per row, for tens of millions.
        """
        step = rng.integers(0, POPULARITY_STEPS, len(category), dtype=np.int32)
        return self.popularity_table[category, step]

    def sample_categories(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.searchsorted(self.category_cdf, rng.random(n) * self.category_cdf[-1]).astype(np.int8)


def build_catalog(n_products: int, rng: np.random.Generator) -> Catalog:
    """Products grouped by category, with skewed category and product popularity."""
    n_cat = len(CATEGORIES)
    popularity = rng.dirichlet(np.full(n_cat, 1.5))
    per_cat = np.maximum(5, rng.multinomial(n_products - 5 * n_cat, popularity) + 5)
    category = np.repeat(np.arange(n_cat, dtype=np.int8), per_cat)
    offset = np.concatenate([[0], np.cumsum(per_cat)[:-1]])
    table = np.zeros((n_cat, POPULARITY_STEPS), dtype=np.int32)
    quantiles = (np.arange(POPULARITY_STEPS) + 0.5) / POPULARITY_STEPS
    for c in range(n_cat):  # 20 categories, not a per-row loop
        weight = np.arange(1, per_cat[c] + 1) ** -1.1  # Zipf within the category
        cdf = np.cumsum(weight) / weight.sum()
        table[c] = offset[c] + np.minimum(np.searchsorted(cdf, quantiles), per_cat[c] - 1)
    base = np.exp(rng.normal(3.2, 0.6, n_cat))  # typical price per category
    price = base[category] * np.exp(rng.normal(0, 0.5, len(category))) + 0.99
    return Catalog(category, np.round(price, 2), popularity, np.cumsum(popularity), table)


@dataclass(frozen=True)
class Customers:
    signup_day: np.ndarray  # int32, sorted
    signup_second: np.ndarray  # int32 second of the signup day (before 22:00, activity follows it)
    # hidden traits
    lam: np.ndarray  # purchase rate per alive day at z = 0
    h0: np.ndarray  # dropout hazard per day at z = 0
    rho: np.ndarray  # browsing-only sessions per alive day at z = 0
    m0: np.ndarray  # long-run engagement level at signup
    fatigue: np.ndarray  # fall of the engagement level per year of tenure
    quality: np.ndarray  # mean experience quality of this customer's orders
    basket: np.ndarray  # mean extra lines per order
    price_sensitivity: np.ndarray  # 0..1: coupon use and response to coupons
    receptiveness: np.ndarray  # lognormal ~1: the unobservable part of every offer's effect
    dog: np.ndarray  # 1.0 for "sleeping dogs" (annoyed by contact), else 0.0
    favourite: np.ndarray  # (n, 3) int8 favourite categories
    # observable profile
    device: np.ndarray  # int8 index into DEVICES
    acquisition: np.ndarray  # int8 index into ACQUISITION
    contact_channel: np.ndarray  # int8 index into CONTACT_CHANNELS
    age: np.ndarray  # int16

    @property
    def n(self) -> int:
        return len(self.signup_day)

    def subset(self, rows: slice | np.ndarray) -> "Customers":
        """The same customers' traits for ``rows`` (views for a slice, copies for an index)."""
        return Customers(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


def build_customers(n: int, n_days: int, catalog: Catalog, model: ShopModel,
                    rng: np.random.Generator) -> Customers:
    """Draw every customer's profile and hidden traits (vectorised, signup-sorted)."""
    signup = _signup_days(n, n_days, model.signup_growth, rng)
    acquisition = rng.choice(len(ACQUISITION), n, p=_ACQ_WEIGHTS).astype(np.int8)
    device = rng.choice(len(DEVICES), n, p=_DEVICE_WEIGHTS).astype(np.int8)
    age = np.clip(np.round(rng.normal(38, 12, n)), 18, 85).astype(np.int16)
    price_sensitivity = rng.beta(2.0, 3.0, n)
    age_rate = 1.0 + 0.006 * (age - 38)  # older customers buy a little more often

    lam = (_gamma(rng, model.purchase_rate_shape, model.purchase_rate_mean, n) * age_rate
           * _ACQ_RATE[acquisition])
    h0 = _gamma(rng, model.hazard_shape, model.hazard_mean, n) * _ACQ_HAZARD[acquisition]
    rho = (_gamma(rng, model.browse_rate_shape, model.browse_rate_mean, n) * _DEVICE_BROWSE[device]
           * (lam / model.purchase_rate_mean) ** model.browse_lam_exponent)
    m0 = rng.normal(0.0, model.z_level_sd, n)
    return Customers(
        signup_day=signup,
        signup_second=rng.integers(6 * 3600, 22 * 3600, n).astype(np.int32),
        lam=lam, h0=h0, rho=rho,
        m0=m0,
        fatigue=_gamma(rng, 2.0, model.z_fatigue_mean, n),
        quality=rng.normal(0.0, model.quality_sd, n),
        basket=_gamma(rng, model.basket_lines_shape, model.basket_lines_mean, n),
        price_sensitivity=price_sensitivity,
        receptiveness=np.exp(rng.normal(-0.5 * model.effects.receptiveness_sd ** 2,
                                        model.effects.receptiveness_sd, n)),
        dog=_sleeping_dogs(m0, rho, model, rng),
        favourite=rng.choice(len(CATEGORIES), (n, 3), p=catalog.category_popularity).astype(np.int8),
        device=device, acquisition=acquisition,
        contact_channel=rng.choice(len(CONTACT_CHANNELS), n, p=_CONTACT_WEIGHTS).astype(np.int8),
        age=age,
    )


def _gamma(rng: np.random.Generator, shape: float, mean: float, n: int) -> np.ndarray:
    return rng.gamma(shape, mean / shape, n)


def _signup_days(n: int, n_days: int, growth: float, rng: np.random.Generator) -> np.ndarray:
    """Signup days spread over the history with a linearly growing density (inverse CDF)."""
    u = np.sort(rng.random(n))
    if growth > 0:
        x = (np.sqrt(1 + growth * (2 + growth) * u) - 1) / growth
    else:
        x = u
    return np.minimum((x * n_days).astype(np.int32), n_days - 1)


def _sleeping_dogs(m0: np.ndarray, rho: np.ndarray, model: ShopModel,
                   rng: np.random.Generator) -> np.ndarray:
    """A minority annoyed by contact, likelier among the low-engagement: rare visitors (low
    browsing rate ``rho``, which shows in the sessions) with a low engagement level ``m0``."""
    base = np.log(model.dog_share / (1 - model.dog_share))
    log_rho = np.log(rho)
    rare_visitor = -(log_rho - log_rho.mean()) / max(log_rho.std(), 1e-9)
    low_level = -m0 / model.z_level_sd
    p = 1.0 / (1.0 + np.exp(-(base + model.dog_engagement_coef * (rare_visitor + 0.5 * low_level))))
    return (rng.random(len(m0)) < p).astype(np.float64)
