"""Retention decisions: who to contact, with what, through which channel — under a budget.

``decide(settings)`` turns one scoring run (``scoring.churn_scores`` at ``settings.as_of``) into
a campaign:

1. **Segments**: risk tier, value tier and RFM segment per scored customer (rules in
   :mod:`ml.model.segments`) → ``retention.customer_segments``.
2. **Expected effects**: an :class:`EffectModel` gives, per customer and offer of the catalog
   (``dbt_project/seeds/offer_catalog.csv``), the expected relative reduction of the churn
   probability, or NaN where the offer does not apply. Today :class:`PriorEffects` uses the
   catalog's prior effect and its eligibility rule; an uplift model slots in by implementing the
   same one method, and nothing else changes.
3. **Policy**: expected net value ``churn_probability × predicted_value × effect − unit_cost``
   per (customer, offer); each customer gets the offer maximising ``net − λ·cost`` or nothing when
   that is not positive, with the smallest ``λ ≥ 0`` whose spend fits ``settings.campaign_budget``
   (bisection on a monotone spend). Because every customer's choice maximises the same Lagrangian,
   a larger budget never gives a lower total expected net value, and spend never exceeds the budget.
4. **Control group**: ``settings.control_share`` of the audience, picked by a stable hash of
   ``(campaign_id, customer_id)``, is kept out of contact (``is_control``) and costs nothing; a
   rerun of the same campaign picks the very same customers. Controls are chosen by the same
   rule as the treated, so treated and control of every offer are comparable.

The audience goes to ``retention.audience_decisions``; the dbt marts ``marts.crm`` then add the
recommended products (``retention_audience``), and ``marts.analytics`` measure past campaigns
and raise risk alerts (``build_marts``). Reruns replace the campaign's rows in one transaction.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Protocol

import numpy as np
import pandas as pd

from ml.model.segments import segment_customers
from ml.core.settings import Settings
from ml.core.warehouse import connect, fetch_frame, table_exists

log = logging.getLogger(__name__)

RECOMMENDATIONS_PER_CUSTOMER = 5
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
    """Expected relative reduction of churn probability per (customer, offer); NaN = not offered."""

    name: str

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
    """The catalog's prior expected effect for every eligible (customer, offer) pair."""

    name = "prior"

    def expected_effects(self, customers: pd.DataFrame, offers: pd.DataFrame) -> np.ndarray:
        prior = offers["expected_effect"].to_numpy(float)[None, :]
        return np.where(eligibility(customers, offers), prior, np.nan)


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


# ---- the policy ---------------------------------------------------------------------------------


def expected_net_values(probability: np.ndarray, value: np.ndarray, effects: np.ndarray,
                        unit_cost: np.ndarray) -> np.ndarray:
    """``p × value × effect − cost`` per (customer, offer); −inf where the offer does not apply."""
    gain = (np.asarray(probability, float) * np.nan_to_num(np.asarray(value, float)))[:, None] * effects
    net = gain - np.asarray(unit_cost, float)[None, :]
    return np.where(np.isnan(effects), -np.inf, net)


def choose_offers(net: np.ndarray, unit_cost: np.ndarray, budget: float, billable: np.ndarray,
                  iterations: int = 60, tolerance: float = 1e-7) -> tuple[np.ndarray, float]:
    """Per customer the offer index maximising ``net − λ·cost`` (−1: nothing), and λ.

    λ is the smallest non-negative price of a unit of budget at which the spend on billable
    customers (the treated; controls cost nothing) fits ``budget`` (found by bisection to a
    relative ``tolerance``; the returned λ always fits).
    """
    n, k = net.shape
    cost = np.asarray(unit_cost, float)
    billable = np.asarray(billable, bool)

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

    def solve(lam: float) -> np.ndarray:
        if k == 0:
            return np.full(n, -1)
        if has_nan:
            adjusted = net - lam * cost[None, :]
            best = np.argmax(adjusted, axis=1)
            return np.where(adjusted[np.arange(n), best] > 0, best, -1)
        best_value, best = best_offers(lam, by_offer, np.arange(k))
        return np.where(best_value > 0, best, -1)

    # only the billable customers spend, so the bisection solves for them alone and tracks the
    # chosen offer's cost directly: the same costs in the same order as cost[choice], the same sum
    billed = by_offer[:, billable] if not billable.all() else by_offer

    def spend(lam: float) -> float:
        if k == 0 or has_nan:
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


def control_flags(customer_ids: np.ndarray, campaign_id: str, share: float) -> np.ndarray:
    """Stable hash of (campaign_id, customer_id) → uniform in [0, 1) → below ``share``: control."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"control_share must be in [0, 1), got {share}")
    # the prefix is hashed once; each customer continues from a copy of that state (the same
    # digest as hashing prefix + id, without re-hashing the prefix a million times)
    seeded = hashlib.blake2b(campaign_id.encode() + b"\x1f", digest_size=8)
    digests = []
    for customer_id in map(str, customer_ids):
        h = seeded.copy()
        h.update(customer_id.encode())
        digests.append(h.digest())
    digests = b"".join(digests)
    u = np.frombuffer(digests, dtype=">u8").astype(np.float64) / 2.0**64
    return u < share


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
    effect_model = effect_model or PriorEffects()
    campaign_id = settings.campaign_id
    customers = load_scored_customers(settings)
    if customers.empty:
        raise RuntimeError(f"no scores at {settings.as_of} (horizon {settings.horizon_days}); run score first")

    # segments
    customers = customers.join(segment_customers(
        customers, risk_high=settings.risk_tier_high, risk_medium=settings.risk_tier_medium,
        value_high_share=settings.value_tier_high_share, value_medium_share=settings.value_tier_medium_share))
    customers["has_service_issue"] = has_service_issue([customers[c] for c in ("reason_1", "reason_2", "reason_3")])

    # expected net value per (customer, offer), then the budgeted choice
    offers = load_offer_catalog(settings)
    effects = np.asarray(effect_model.expected_effects(customers, offers), float)
    net = expected_net_values(customers["churn_probability"].to_numpy(), customers["predicted_value"].to_numpy(),
                              effects, offers["unit_cost"].to_numpy())
    is_control = control_flags(customers["customer_id"].to_numpy(), campaign_id, settings.control_share)
    choice, lam = choose_offers(net, offers["unit_cost"].to_numpy(), settings.campaign_budget, ~is_control)

    picked = np.flatnonzero(choice >= 0)
    offer_of = choice[picked]
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

    segments = customers[["customer_id", "as_of_date", "horizon_days", "churn_probability", "predicted_value",
                          "risk_tier", "value_tier", "recency_score", "frequency_score", "monetary_score",
                          "segment", "has_service_issue", "days_since_last_order", "order_count", "spend",
                          "model_version"]]
    _store(settings, campaign_id, segments, audience)

    treated = ~audience["is_control"].to_numpy(bool)
    summary = {
        "campaign_id": campaign_id,
        "customers": len(customers),
        "audience": len(audience),
        "treated": int(treated.sum()),
        "control": int((~treated).sum()),
        "budget": float(settings.campaign_budget),
        "spend": round(float(audience["unit_cost"].to_numpy()[treated].sum()), 2),
        "expected_net_value": round(float(audience["expected_net_value"].to_numpy()[treated].sum()), 2),
        "budget_price": round(lam, 6),
        "actions": {k: int(v) for k, v in audience["offer_code"][treated].value_counts().sort_index().items()},
        "effect_source": effect_model.name,
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
        con.execute("begin")
        con.execute("delete from retention.customer_segments where as_of_date = ? and horizon_days = ?",
                    [settings.as_of, settings.horizon_days])
        con.execute("insert into retention.customer_segments by name select * from segments")
        con.execute("delete from retention.audience_decisions where campaign_id = ?", [campaign_id])
        con.execute("insert into retention.audience_decisions by name select * from audience")
        con.execute("commit")


def marts_vars(settings: Settings) -> dict:
    """dbt vars for the crm and analytics marts: the run's dates plus the retention knobs."""
    from ml.core.dbt import dbt_vars

    return {
        **dbt_vars(settings),
        "campaign_id": settings.campaign_id,
        "risk_alert_min_increase": float(settings.risk_alert_min_increase),
        "recommendations_per_customer": RECOMMENDATIONS_PER_CUSTOMER,
    }


MARTS_SELECTOR = ["offer_catalog", "marts.crm", "marts.analytics"]


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
