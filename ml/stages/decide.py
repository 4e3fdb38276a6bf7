"""Retention decisions: who to contact, with what, through which channel — under a budget.

``decide(settings)`` turns one scoring run (``scoring.churn_scores`` at ``settings.as_of``) into
a campaign:

1. **Segments**: risk tier, value tier and RFM segment per scored customer (rules in
   :mod:`ml.model.segments`) → ``retention.customer_segments``.
2. **Expected uplift**: an :class:`EffectModel` gives, per customer and offer of the catalog
   (``dbt_project/seeds/offer_catalog.csv``), the absolute expected change in P(stay) if the
   customer gets the offer, or NaN where the offer does not apply. The uplift model
   (``ml.stages.uplift.load_effect_model``: the registry's champion) is used when one passed its gate;
   otherwise :class:`PriorEffects`: ``churn_probability × the catalog's prior effect`` under the
   catalog's eligibility rules. ``settings.effect_model = "prior"`` always uses the priors.
3. **Policy** (:mod:`ml.model.policy`): expected net value ``uplift × predicted_value − unit_cost``
   per (customer, offer); an offer whose uplift is not positive is never chosen, so customers
   whose best uplift is not positive ("sleeping dogs") are never contacted. Each customer gets
   the offer maximising ``net − λ·cost`` or nothing, with the smallest ``λ ≥ 0`` whose spend fits
   ``settings.campaign_budget``; at most ``settings.contact_share`` of the scored customers are
   contacted (the best by ``net − λ·cost``). A larger budget never gives a lower total expected
   net value when the contact cap does not bind, and neither limit is ever exceeded.
4. **Control group**: ``settings.control_share`` of the customers, picked by a stable hash of
   ``(campaign_id, customer_id)``, is kept out of contact (``is_control``) and costs nothing; a
   rerun of the same campaign picks the very same customers. Controls are chosen by the same
   rule as the treated, so treated and control of every offer are comparable.
5. **Exploration**: ``settings.exploration_share`` of the budget (of the money and of the
   contacts) goes to customers drawn in the order of another stable hash among all those with a
   positive uplift for some offer, each with an offer drawn uniformly among the offers predicted
   to help them (control-flagged ones are held out with their drawn offer). Every row records its
   ``assignment`` (targeted / exploration / control) and ``propensity`` (the probability of what
   the row records under this design), so later uplift models learn effects outside the current
   policy's choices without bias. The targeted policy gets what exploration left.

With ``exploration_share = 0``, ``contact_share = 1`` and the prior effects the policy is the one
of issue 1 and publishes the same rows.

The audience goes to ``retention.audience_decisions``; the dbt marts ``marts.crm`` then add the
recommended products (``retention_audience``), and ``marts.analytics`` measure past campaigns
and raise risk alerts (``build_marts``). Reruns replace the campaign's rows in one transaction.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Protocol

import numpy as np
import pandas as pd

from ml.model.policy import (choose_offers, contact_cap, control_flags, draw_exploration, net_values,
                             propensities, protect_sleeping_dogs)
from ml.model.segments import segment_customers
from ml.core import defaults
from ml.core.dbt import MARTS_SELECT
from ml.core.settings import Settings
from ml.core.warehouse import connect, fetch_frame, table_exists

log = logging.getLogger(__name__)

RECOMMENDATIONS_PER_CUSTOMER = int(defaults.var("recommendations_per_customer"))  # dbt_project.yml
OFFER_COLUMNS = ("offer_code", "action", "channel", "unit_cost", "expected_effect", "eligibility")
ELIGIBILITY_RULES = ("any", "high_value", "service_issue", "item_data")
# A reason names a service problem when it matches SERVICE_PROBLEM and not NOT_A_PROBLEM (both
# lower-case regexes). They read feature names (count_tickets_unresolved) as well as the readable
# sentences of dbt_project/seeds/reason_catalog.csv ("Unresolved support tickets"), whose
# reassuring variants ("Few support tickets", "... but other signals weigh") must not count.
SERVICE_PROBLEM = (r"ticket|support|complain|cancel|return|refund|deliver|low rating|low_rating"
                   r"|review_rating|low average review|negative|unhappy|resol")
NOT_A_PROBLEM = r"but other signals weigh|^few |^no |does not|all tickets resolved|long ago|resolved quickly"


# ---- the offer catalog and expected effects ---------------------------------------------------


def load_offer_catalog(settings: Settings) -> pd.DataFrame:
    """The offer catalog seed (the same file dbt loads as ``marts.offer_catalog``)."""
    path = settings.dbt_project_dir / "seeds" / "offer_catalog.csv"
    offers = pd.read_csv(path, dtype={"offer_code": str, "action": str, "channel": str, "eligibility": str})
    missing = [c for c in OFFER_COLUMNS if c not in offers]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    bad = sorted(set(offers["eligibility"]) - set(ELIGIBILITY_RULES))
    if bad or (offers["unit_cost"] <= 0).any() or offers["offer_code"].duplicated().any():
        raise ValueError(f"{path}: offer codes must be unique, unit_cost > 0, eligibility one of "
                         f"{ELIGIBILITY_RULES} (found {bad})")
    return offers.reset_index(drop=True)


class EffectModel(Protocol):
    """Expected uplift per (customer, offer): the ABSOLUTE expected change in P(stay) if the customer
    gets the offer (0.02 = two points more likely to stay); NaN = the offer is not eligible.

    ``customers`` has one row per scored customer (customer_id, as_of_date, horizon_days,
    churn_probability, predicted_value, reasons, tiers, segment, has_service_issue, ...);
    ``offers`` is the offer catalog. ``name`` and ``version`` are published with every row
    (``effect_source``, ``effect_model_version``).
    """

    name: str
    version: str

    def expected_effects(self, customers: pd.DataFrame, offers: pd.DataFrame) -> np.ndarray:
        """An array of shape (len(customers), len(offers))."""
        ...


def eligibility(customers: pd.DataFrame, offers: pd.DataFrame) -> np.ndarray:
    """Which offers each customer may get: (n_customers, n_offers) booleans."""
    rules = {
        "any": np.ones(len(customers), bool),
        "high_value": (customers["value_tier"] == "high").to_numpy(),
        "service_issue": customers["has_service_issue"].to_numpy(bool),
        # recommendations need item data (the shop's order_items); fallbacks cover customers without
        "item_data": customers["has_item_data"].to_numpy(bool) if "has_item_data" in customers
        else np.ones(len(customers), bool),
    }
    return np.column_stack([rules[r] for r in offers["eligibility"]]) if len(offers) else np.zeros((len(customers), 0), bool)


class PriorEffects:
    """The catalog's prior: uplift = churn_probability × the offer's expected relative reduction of
    churn, for every eligible (customer, offer) pair."""

    name = "prior"
    version = "offer_catalog"

    def relative_effects(self, customers: pd.DataFrame, offers: pd.DataFrame) -> np.ndarray:
        """The catalog's expected relative reduction of churn probability; NaN where not eligible."""
        prior = offers["expected_effect"].to_numpy(float)[None, :]
        return np.where(eligibility(customers, offers), prior, np.nan)

    def expected_effects(self, customers: pd.DataFrame, offers: pd.DataFrame) -> np.ndarray:
        probability = customers["churn_probability"].to_numpy(float)[:, None]
        return probability * self.relative_effects(customers, offers)


def default_effect_model(settings: Settings) -> EffectModel:
    """The uplift model's champion for the run's horizon when there is one (``settings.effect_model``
    "auto"), else the catalog's priors; the uplift stage's loader says in one line why not."""
    if settings.effect_model == "prior":
        return PriorEffects()
    if settings.effect_model != "auto":
        raise ValueError(f"effect_model must be 'auto' or 'prior', got {settings.effect_model!r}")
    from ml.stages.uplift import load_effect_model

    return load_effect_model(settings) or PriorEffects()


def has_service_issue(reasons: list) -> np.ndarray:
    """True where any of the customer's reasons names a service problem.

    Each column (a numpy array, pandas Series or Arrow array of texts) holds a few dozen distinct
    texts, so the regexes run on Arrow's dictionary of them, not on every customer's text.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    hit = np.zeros(len(reasons[0]) if reasons else 0, bool)
    for col in reasons:
        texts = pa.array(col, type=pa.string(), from_pandas=True)
        if isinstance(texts, pa.ChunkedArray):
            texts = texts.combine_chunks()
        encoded = pc.dictionary_encode(texts)
        text = pd.Series(encoded.dictionary.to_pylist(), dtype="string").str.lower().str.strip()
        problem = (text.str.contains(SERVICE_PROBLEM, regex=True)
                   & ~text.str.contains(NOT_A_PROBLEM, regex=True)).fillna(False).to_numpy(bool)
        codes = encoded.indices.fill_null(len(problem)).to_numpy()  # no reason → the False appended
        hit |= np.append(problem, False)[codes]
    return hit


# ---- the policy (pure pieces in ml.model.policy) -------------------------------------------------


def expected_net_values(probability: np.ndarray, value: np.ndarray, effects: np.ndarray,
                        unit_cost: np.ndarray) -> np.ndarray:
    """``(p × value) × relative effect − cost`` per (customer, offer); −inf where the offer does not
    apply. The same number as ``uplift × value − cost`` with ``uplift = p × effect`` up to rounding,
    multiplied in the order the campaigns before uplift models used, so their rows stay identical."""
    gain = (np.asarray(probability, float) * np.nan_to_num(np.asarray(value, float)))[:, None] * effects
    net = gain - np.asarray(unit_cost, float)[None, :]
    return np.where(np.isnan(effects), -np.inf, net)


def policy_values(effect_model: EffectModel, customers: pd.DataFrame,
                  offers: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uplift, relative effect, net value) per (customer, offer) from ``effect_model``."""
    probability = customers["churn_probability"].to_numpy(float)
    value, cost = customers["predicted_value"].to_numpy(), offers["unit_cost"].to_numpy()
    uplift = np.asarray(effect_model.expected_effects(customers, offers), float)
    relative = getattr(effect_model, "relative_effects", None)
    if relative is not None:  # a model stated as p × relative effect (the priors)
        effects = np.asarray(relative(customers, offers), float)
        return uplift, effects, protect_sleeping_dogs(expected_net_values(probability, value, effects, cost), uplift)
    with np.errstate(divide="ignore", invalid="ignore"):
        effects = np.where(probability[:, None] > 0, uplift / probability[:, None], np.nan)
    return uplift, effects, net_values(uplift, value, cost)


# ---- the stage -----------------------------------------------------------------------------------


def load_scored_customers(settings: Settings) -> pd.DataFrame:
    """The run's scores joined to the RFM inputs from its features (one row per customer)."""
    with connect(settings, read_only=True) as con:
        have = {r[0] for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'marts' and table_name = 'customer_features'").fetchall()}

        def feature(preferred: tuple[str, ...], alias: str) -> str:
            col = next((c for c in preferred if c in have), None)
            return f"f.{col} as {alias}" if col else f"null::double as {alias}"

        sql = f"""
            select s.customer_id, s.as_of_date, s.horizon_days, s.churn_probability, s.predicted_value,
                   s.reason_1, s.reason_2, s.reason_3, s.model_version,
                   concat_ws('; ', s.reason_1, s.reason_2, s.reason_3) as reason_summary,
                   {feature(("days_since_last_order",), "days_since_last_order")},
                   {feature(("count_orders_lifetime", "count_orders"), "order_count")},
                   {feature(("amount_lifetime", "amount_365d"), "spend")},
                   {"f.count_distinct_products is not null" if "count_distinct_products" in have else "false"}
                       as has_item_data
            from scoring.churn_scores s
            left join marts.customer_features f
              on f.customer_id = s.customer_id and f.as_of_date = s.as_of_date
            where s.as_of_date = ? and s.horizon_days = ?
        """
        return fetch_frame(con, sql, [settings.as_of, settings.horizon_days])


def decide(settings: Settings, effect_model: EffectModel | None = None) -> dict:
    """Segment the run's customers and pick the campaign audience; write both tables."""
    started = time.perf_counter()
    effect_model = effect_model or default_effect_model(settings)
    campaign_id = settings.campaign_id
    customers = load_scored_customers(settings)
    if customers.empty:
        raise RuntimeError(f"no scores at {settings.as_of} (horizon {settings.horizon_days}); run score first")

    # segments
    customers = customers.join(segment_customers(
        customers, risk_high=settings.risk_tier_high, risk_medium=settings.risk_tier_medium,
        value_high_share=settings.value_tier_high_share, value_medium_share=settings.value_tier_medium_share))
    customers["has_service_issue"] = has_service_issue([customers[c] for c in ("reason_1", "reason_2", "reason_3")])

    # expected uplift and net value per (customer, offer)
    offers = load_offer_catalog(settings)
    cost = offers["unit_cost"].to_numpy(float)
    uplift, effects, net = policy_values(effect_model, customers, offers)

    # held out, explored, then the budgeted choice with what exploration left
    ids = customers["customer_id"].to_numpy()
    is_control = control_flags(ids, campaign_id, settings.control_share)
    max_contacts = contact_cap(len(customers), settings.contact_share)
    share = settings.exploration_share
    if not 0.0 <= share < 1.0:
        raise ValueError(f"exploration_share must be in [0, 1), got {share}")
    explored = draw_exploration(ids, campaign_id, uplift, cost, ~is_control, share * settings.campaign_budget,
                                None if max_contacts is None else int(np.floor(share * max_contacts)))
    choice, lam = choose_offers(net, cost, settings.campaign_budget - explored.spend, ~is_control & ~explored.drawn,
                                max_contacts=None if max_contacts is None else max_contacts - explored.contacts)

    picked = np.flatnonzero(explored.drawn | (choice >= 0))
    offer_of = np.where(explored.drawn, explored.offer, choice)[picked]
    assignment = np.where(is_control[picked], "control",
                          np.where(explored.drawn[picked], "exploration", "targeted")).astype(object)
    audience = pd.DataFrame({"campaign_id": np.full(len(picked), campaign_id, dtype=object)})
    for col in ("customer_id", "as_of_date", "horizon_days", "churn_probability", "predicted_value",
                "risk_tier", "value_tier", "segment", "model_version"):
        audience[col] = customers[col].take(picked).reset_index(drop=True)
    for col in ("action", "offer_code", "channel", "unit_cost"):
        audience[col] = offers[col].to_numpy()[offer_of]
    audience["expected_effect"] = effects[picked, offer_of]
    audience["expected_net_value"] = net[picked, offer_of]
    audience["effect_source"] = effect_model.name
    audience["is_control"] = is_control[picked]
    audience["reason_summary"] = customers["reason_summary"].take(picked).reset_index(drop=True)
    audience["expected_uplift"] = uplift[picked, offer_of]
    audience["assignment"] = assignment
    audience["propensity"] = propensities(assignment, offer_of, choice[picked], explored.offers_open[picked],
                                          settings.control_share, explored.inclusion)
    audience["effect_model_version"] = str(effect_model.version)

    segments = customers[["customer_id", "as_of_date", "horizon_days", "churn_probability", "predicted_value",
                          "risk_tier", "value_tier", "recency_score", "frequency_score", "monetary_score",
                          "segment", "has_service_issue", "days_since_last_order", "order_count", "spend",
                          "model_version"]]
    _store(settings, campaign_id, segments, audience)

    treated = ~audience["is_control"].to_numpy(bool)
    exploring = (assignment == "exploration")
    summary = {
        "campaign_id": campaign_id,
        "customers": len(customers),
        "audience": len(audience),
        "treated": int(treated.sum()),
        "control": int((~treated).sum()),
        "exploration": int(exploring.sum()),
        "budget": float(settings.campaign_budget),
        "contact_cap": max_contacts,
        "spend": round(float(audience["unit_cost"].to_numpy()[treated].sum()), 2),
        "exploration_spend": round(explored.spend, 2),
        "expected_net_value": round(float(audience["expected_net_value"].to_numpy()[treated].sum()), 2),
        "budget_price": round(lam, 6),
        "actions": {k: int(v) for k, v in audience["offer_code"][treated].value_counts().sort_index().items()},
        "effect_source": effect_model.name,
        "effect_model_version": str(effect_model.version),
        "seconds": round(time.perf_counter() - started, 2),
    }
    log.info("decide %s", summary)
    return summary


def _store(settings: Settings, campaign_id: str, segments: pd.DataFrame, audience: pd.DataFrame) -> None:
    """Replace this run's segments and this campaign's audience in one transaction."""
    import pyarrow as pa
    import pyarrow.compute as pc

    segments = pa.Table.from_pandas(segments, preserve_index=False)
    audience = pa.Table.from_pandas(audience, preserve_index=False)
    # priority rank: 1 = highest expected net value, ties by customer id (Arrow's sort, no SQL window)
    order = pc.sort_indices(audience, sort_keys=[("expected_net_value", "descending"), ("customer_id", "ascending")])
    rank = np.empty(audience.num_rows, dtype=np.int64)
    rank[order.to_numpy()] = np.arange(1, audience.num_rows + 1)
    audience = audience.append_column("priority_rank", pa.array(rank))
    with connect(settings) as con:
        con.register("segments", segments)
        con.register("audience", audience)
        con.execute("create schema if not exists retention")
        con.execute("create table if not exists retention.customer_segments as select * from segments limit 0")
        con.execute("create table if not exists retention.audience_decisions as select * from audience limit 0")
        _add_new_columns(con, "retention.audience_decisions", "audience")
        con.execute("begin")
        con.execute("delete from retention.customer_segments where as_of_date = ? and horizon_days = ?",
                    [settings.as_of, settings.horizon_days])
        con.execute("insert into retention.customer_segments by name select * from segments")
        con.execute("delete from retention.audience_decisions where campaign_id = ?", [campaign_id])
        con.execute("insert into retention.audience_decisions by name select * from audience")
        con.execute("commit")


def _add_new_columns(con, table: str, frame: str) -> None:
    """Columns of ``frame`` that ``table`` lacks (a warehouse from before they existed) are added; its
    earlier rows hold NULL there."""
    have = {r[0] for r in con.execute(f"select * from {table} limit 0").description}
    for name, kind in con.execute(f"select column_name, column_type from (describe {frame})").fetchall():
        if name not in have:
            con.execute(f'alter table {table} add column "{name}" {kind}')


def marts_vars(settings: Settings) -> dict:
    """dbt vars for the crm and analytics marts: the run's dates plus the retention knobs."""
    from ml.core.dbt import dbt_vars

    return {
        **dbt_vars(settings),
        "campaign_id": settings.campaign_id,
        "risk_alert_min_increase": float(settings.risk_alert_min_increase),
        "recommendations_per_customer": RECOMMENDATIONS_PER_CUSTOMER,
    }


MARTS_SELECTOR = list(MARTS_SELECT)  # both seeds and the crm and analytics marts, as Cosmos builds them


def build_marts(settings: Settings) -> dict:
    """``dbt build`` the offer catalog seed and the crm and analytics marts (with their tests)."""
    from ml.core.dbt import run_dbt

    started = time.perf_counter()
    run_dbt(settings, ["build", "--select", *MARTS_SELECTOR, "--vars", json.dumps(marts_vars(settings))])
    with connect(settings, read_only=True) as con:
        rows = {name: con.execute(f"select count(*) from marts.{name}").fetchall()[0][0]
                for name in ("customer_segments", "retention_audience", "campaign_results", "risk_alerts")
                if table_exists(con, "marts", name)}
    return {"rows": rows, "seconds": round(time.perf_counter() - started, 2)}
