"""The knobs of the latent shop model, gathered in one frozen dataclass.

Every number that shapes the synthetic shop lives here, with the reason for its value, so a
reader can see the whole model at a glance and a test can build a variant with
``dataclasses.replace``. Rates are per day; ``z`` is the latent engagement (see the package
docstring): hazard, purchase rate and browsing rate are all log-linear in it.
"""
from __future__ import annotations

from dataclasses import dataclass

from .offers import EFFECTS, EffectModel


@dataclass(frozen=True)
class ShopModel:
    # ---- acquisition -----------------------------------------------------------------------
    signup_growth: float = 1.0  # signup density rises linearly to (1 + growth) x its start value
    first_day_order_rate: float = 0.9  # extra order intensity on the signup day (most sign up to buy)

    # ---- static heterogeneity (gamma mixtures, as in BG/NBD and gamma-gamma) ------------------
    purchase_rate_mean: float = 1 / 45  # orders per alive day at z = 0
    purchase_rate_shape: float = 3.0
    hazard_mean: float = 1 / 2500  # daily dropout hazard at z = 0
    hazard_shape: float = 4.0
    # Alive customers visit regularly (several sessions a month for most); a dropped-out
    # customer has stopped: only a rare stray visit. So recent browsing reveals the hidden
    # alive/dead state (as in a real shop), instead of recency of orders alone.
    browse_rate_mean: float = 1 / 9  # browsing-only sessions per alive day at z = 0, lambda at its mean
    browse_rate_shape: float = 8.0
    browse_lam_exponent: float = 0.6  # keen buyers browse more: rho ~ gamma x (lambda / mean)^exp
    dead_browse_share: float = 0.004  # the dropped-out still drop by, very rarely (x rho)
    basket_lines_shape: float = 2.0  # extra lines per order ~ Poisson(gamma-distributed mean)
    basket_lines_mean: float = 1.2
    quality_sd: float = 0.35  # customer-level mean experience (some are harder to please)

    # ---- engagement z: mean-reverting towards a slowly falling personal level ------------------
    z_level_sd: float = 0.4  # personal long-run level m0 ~ N(0, sd)
    z_honeymoon: float = 0.6  # z starts above the level at signup and relaxes down to it
    z_fatigue_mean: float = 0.45  # the level falls by this much per year of tenure (gamma, shape 2)
    z_reversion: float = 1 / 25  # share of the gap to the level closed per day
    hazard_z_coef: float = 1.8  # hazard = h0 * exp(-coef * z)
    order_z_coef: float = 0.6  # purchase rate = lambda * exp(coef * z)
    browse_z_coef: float = 0.6  # browsing rate = rho * exp(coef * z)
    hazard_cap: float = 0.2

    # ---- one order's experience q ~ N(customer quality + coef * z, 1) and what follows ---------
    # (disengaged customers are harder to please: ratings and tickets lead the dropout)
    experience_z_coef: float = 0.5
    cancel_logit: tuple[float, float] = (-3.4, -0.8)  # intercept, slope on q
    return_logit: tuple[float, float] = (-3.0, -0.9)
    rating_base: float = 3.9  # rating = round(base + slope * q + noise), clipped to 1..5
    rating_slope: float = 1.0
    rating_noise_sd: float = 0.5
    review_share: float = 0.22  # share of orders reviewed ...
    review_share_extreme: float = 0.25  # ... plus this for very good or very bad experiences
    ticket_logit: tuple[float, float] = (-3.0, -1.1)
    ticket_unresolved_share: float = 0.3
    # shocks to z on the order day (bad experiences raise the hazard, good ones lower it)
    shock_good_order: float = 0.06
    shock_cancelled: float = -0.5
    shock_returned: float = -0.6
    shock_bad_rating: float = -0.9  # latent rating <= 2, whether or not the review is written
    shock_unresolved_ticket: float = -1.0
    shock_resolved_ticket: float = -0.15
    scar_share: float = 0.4  # share of each shock kept in the long-run level for good

    # ---- retention campaigns -------------------------------------------------------------------
    campaign_first_day: int = 150  # day index of the first campaign (days of history needed)
    campaign_every_days: int = 91
    campaign_effect_days: int = 60  # a treatment acts on days c+1 .. c+effect_days
    campaign_recency: tuple[int, int] = (21, 120)  # at risk: last completed order this many days ago
    campaign_contact_share: float = 0.7  # of the eligible, this share is picked (budget)
    campaign_control_share: float = 0.15  # of the picked, this share is held out as control
    campaign_order_coef: float = 0.8  # purchase rate x exp(coef * tau) while treated
    # what a contact does: offer x channel x the customer's needs (see .offers.EffectModel)
    effects: EffectModel = EFFECTS
    dog_share: float = 0.06  # sleeping dogs at an average engagement ...
    # ... their log-odds rise this much per sd of lower browsing rate (and half of it per sd
    # of lower engagement level): the rare visitors, as the data shows them
    dog_engagement_coef: float = 1.0
    # grievance: bad experiences add to it, it halves every grievance_half_life days; it is
    # what a service-recovery call can repair
    grievance_half_life: float = 45.0
    grievance_bad_rating: float = 1.0
    grievance_unresolved_ticket: float = 1.5
    grievance_resolved_ticket: float = 0.3
    grievance_cancelled: float = 0.5
    grievance_returned: float = 0.6

    # ---- volumes that only shape the event stream ------------------------------------------------
    # browsing-only sessions: P(add to cart) = sigmoid(a + b * z): the disengaged abandon carts
    browse_cart_logit: tuple[float, float] = (-1.6, -0.8)
    browse_visit_only_share: float = 0.7  # sessions that are just a login / app open (1 event) at z = 0
    browse_depth_z_coef: float = 1.5  # ... logit falls by this per unit of z (engaged look further)
    # orders with a generic coupon: share x (price sensitivity / 0.5)^exp -- the bargain hunters
    # show in their orders (coupon use, discount share), as the coupon response needs
    coupon_base_share: float = 0.12
    coupon_ps_exponent: float = 1.5
    campaign_coupon_share: float = 0.6  # treated orders that redeem a coupon offer (x 0.5 + ps)


MODEL = ShopModel()
