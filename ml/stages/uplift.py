"""The uplift stage: learn from past campaigns, judge on the latest closed one, gate against the priors.

``train_uplift(settings)`` reads ``marts.campaign_outcomes`` (one row per campaign and customer
contacted or held out, the customer's features on the contact day, whether they ordered within
the horizon after it) and:

1. **Split by time**: the held-out campaign is the latest one whose outcome window has closed and
   that has both treated and control contacts; the learner is trained on the campaigns contacted
   before it. Without such a campaign and at least one before it (a shop that exports orders but
   no campaign history) nothing is trained: one log line says why, and the priors stay.
2. **Judge** on the held-out campaign (realized outcomes, scikit-uplift's metrics): the Qini
   coefficient of the model's ranking (the uplift of the offer each contact got) against the
   prior policy's ranking (the churn champion's honest probability × the catalog's effect of that
   offer) and against the current uplift champion's.
3. **Register** a production learner refitted on every closed campaign as its own MLflow model
   per horizon (``<model_name>_uplift_<H>d``), alias ``challenger``, the Qini curve and the
   uplift by decile as artifacts. **Gate**: it becomes ``champion`` only when its Qini beats the
   priors' and the champion's by more than ``MIN_QINI_GAIN``; otherwise the priors (or the
   champion) stay and the version and run carry the reason (tag ``promotion_decision``).

``load_effect_model(settings)`` gives the policy (``ml.stages.decide``) the champion as an
``EffectModel`` (features read from ``marts.customer_features`` at the run's as-of date, the
catalog's eligibility applied), or None with one log line saying why the priors decide.
"""
from __future__ import annotations

import json
import logging
import time

import numpy as np
import pandas as pd

from ml.core import registry
from ml.core.settings import Settings
from ml.core.warehouse import connect, fetch_frame, table_exists
from ml.model.uplift import (OFFER, UpliftLearner, UpliftModel, deciles_figure, qini_figure, realized_scores,
                             uplift_by_decile)

log = logging.getLogger(__name__)

LEARNER = "t_pooled"  # by measurement (benchmarks/results/uplift.json; ml/model/uplift.py says why)
MIN_ARM_ROWS = 30  # treated and control contacts a campaign needs to judge a ranking on
MIN_QINI_GAIN = 0.0  # the challenger's Qini must exceed the reference's by more than this
NOT_FEATURES = {"campaign_id", "customer_id", "contact_source", "offer_code", "contact_channel", "is_control",
                "contact_date", "horizon_days", "outcome_window_end_date", "is_outcome_known", "is_retained",
                "is_active_at_contact", "as_of_date"}


class NoCampaignHistory(Exception):
    """Not enough closed campaigns with treated and control contacts to learn and judge uplift."""


def uplift_settings(settings: Settings) -> Settings:
    """The same run, pointed at the uplift model's registry entry (one per horizon)."""
    return settings.replace(model_name=f"{settings.model_name}_uplift")


def read_outcomes(settings: Settings) -> pd.DataFrame:
    """Closed outcomes of customers active at contact (empty without the mart)."""
    with connect(settings, read_only=True) as con:
        if not table_exists(con.cursor(), "marts", "campaign_outcomes"):  # a cursor: fetchone() leaves its result open
            return pd.DataFrame()
        return fetch_frame(con, "select * from marts.campaign_outcomes where is_outcome_known and is_active_at_contact "
                                "and horizon_days = ? order by contact_date, campaign_id, customer_id",
                           [settings.horizon_days])


def feature_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in NOT_FEATURES]


def split_campaigns(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(training contacts, held-out contacts, held-out campaign id); NoCampaignHistory when either is missing."""
    if frame.empty:
        raise NoCampaignHistory("no closed campaign in marts.campaign_outcomes")
    arms = frame.groupby("campaign_id").agg(contact_date=("contact_date", "max"),
                                            control=("is_control", "sum"), rows=("is_control", "size"))
    arms["treated"] = arms["rows"] - arms["control"]
    judged = arms[(arms["treated"] >= MIN_ARM_ROWS) & (arms["control"] >= MIN_ARM_ROWS)]
    if judged.empty:
        raise NoCampaignHistory(f"none of {len(arms)} closed campaigns has {MIN_ARM_ROWS}+ treated and control contacts")
    held_id = judged.sort_values(["contact_date", "rows"]).index[-1]
    held_date = judged.at[held_id, "contact_date"]
    held = frame[frame["campaign_id"] == held_id].reset_index(drop=True)
    train = frame[frame["contact_date"] < held_date].reset_index(drop=True)
    if train["is_control"].sum() < MIN_ARM_ROWS or (~train["is_control"]).sum() < MIN_ARM_ROWS:
        raise NoCampaignHistory(f"no campaign before {held_id} ({held_date}) to learn from")
    return train, held, str(held_id)


def fit_model(settings: Settings, contacts: pd.DataFrame) -> UpliftModel:
    learner = UpliftLearner(feature_columns(contacts), LEARNER, seed=settings.seed, threads=settings.train_threads)
    learner.fit(contacts, contacts["is_retained"].to_numpy(int), ~contacts["is_control"].to_numpy(bool))
    channels = contacts.groupby(OFFER)["contact_channel"].agg(lambda s: s.mode().iat[0]).to_dict()
    return UpliftModel(learner, channels, settings.horizon_days, sorted(contacts["campaign_id"].unique()))


def prior_ranking(settings: Settings, held: pd.DataFrame) -> tuple[np.ndarray, str]:
    """The priors' uplift of each held-out contact's offer: the churn champion's honest (backtest)
    probability on the contact day × the catalog's expected effect; a constant probability without one."""
    catalog = pd.read_csv(settings.dbt_project_dir / "seeds" / "offer_catalog.csv").set_index("offer_code")
    effect = catalog["expected_effect"].reindex(held[OFFER]).to_numpy(float)
    ref = registry.alias_version(settings, registry.CHAMPION)
    if ref is None:
        return np.nan_to_num(effect), "catalog effect (no churn champion)"
    churn_model = registry.load_version(settings, ref.version)
    p_churn = churn_model.backtest_proba(held.assign(as_of_date=held["contact_date"]))
    return p_churn * np.nan_to_num(effect), f"churn {ref.name} v{ref.version} x catalog effect"


def train_uplift(settings: Settings) -> dict:
    """Train, judge, register and gate the uplift model; see the module docstring."""
    import mlflow
    from mlflow.models import infer_signature

    started = time.perf_counter()
    # prepare data: the time split
    try:
        train, held, held_id = split_campaigns(read_outcomes(settings))
    except NoCampaignHistory as why:
        log.info("uplift: not trained (%s); the policy keeps the offer catalog's priors", why)
        return {"status": "skipped", "reason": str(why), "seconds": round(time.perf_counter() - started, 2)}

    # evaluate on the held-out campaign: the backtest model, the priors, the current champion
    y, treated = held["is_retained"].to_numpy(int), ~held["is_control"].to_numpy(bool)
    backtest = fit_model(settings, train)
    scores = {"model": backtest.received_uplift(held)}
    scores["prior"], prior_basis = prior_ranking(settings, held)
    up = uplift_settings(settings)
    champion = registry.alias_version(up, registry.CHAMPION)
    if champion is not None:
        scores[f"champion v{champion.version}"] = registry.load_version(up, champion.version).received_uplift(held)
    scores = {k: np.nan_to_num(v) for k, v in scores.items()}
    metrics = {name: realized_scores(y, s, treated) for name, s in scores.items()}

    # production: the same learner on every closed campaign
    everything = pd.concat([train, held], ignore_index=True)
    model = fit_model(settings, everything)

    # log, register, gate
    registry.configure(settings)
    with mlflow.start_run(run_name=f"uplift-{settings.as_of}-h{settings.horizon_days}") as run:
        tags = {"as_of_date": str(settings.as_of), "horizon_days": str(settings.horizon_days),
                "held_out_campaign": held_id, "learner": LEARNER, "prior_basis": prior_basis,
                "train_campaigns": ",".join(backtest.trained_on)}
        mlflow.set_tags(tags)
        mlflow.log_params({"learner": LEARNER, "train_rows": len(train), "held_out_rows": len(held),
                           "production_rows": len(everything), "offers": ",".join(model.offers)})
        mlflow.log_metrics({f"held_out_{name.split()[0]}_{k}": v for name, m in metrics.items() for k, v in m.items()})
        log_pictures(y, scores, treated)
        example = everything.head(5)[feature_columns(everything)]
        info = mlflow.pyfunc.log_model(name="model", python_model=model,
                                       signature=infer_signature(example, model.predict(None, example)),
                                       input_example=example, registered_model_name=up.registered_model_name,
                                       pip_requirements=["lightgbm", "scikit-uplift", "scikit-learn", "pandas", "numpy"])
        version = str(info.registered_model_version)
        registry.tag_version(up, version, tags)
        registry.set_alias(up, registry.CHALLENGER, version)
        promoted, decision = gate(up, version, metrics, held_id)
        mlflow.set_tags({"promotion_decision": decision, "promoted": str(promoted).lower()})
    result = {"status": "promoted" if promoted else "kept", "version": version, "run_id": run.info.run_id,
              "held_out_campaign": held_id, "decision": decision,
              "qini": {k: round(m["qini"], 4) for k, m in metrics.items()},
              "seconds": round(time.perf_counter() - started, 2)}
    log.info("uplift %s", json.dumps(result))
    return result


def train_uplift_if_needed(settings: Settings) -> dict:
    """Train when asked (``settings.retrain``) or when the horizon has no uplift model version yet."""
    up = uplift_settings(settings)
    if not settings.retrain and registry.alias_version(up, registry.CHALLENGER) is not None:
        return {"status": "not retrained", "reason": f"{up.registered_model_name} exists and retrain is off"}
    return train_uplift(settings)


def gate(up: Settings, version: str, metrics: dict[str, dict], held_id: str) -> tuple[bool, str]:
    """Champion only when the model's Qini beats every reference's (priors, champion) on the held-out campaign."""
    model = metrics["model"]["qini"]
    name, best = max(((k, m["qini"]) for k, m in metrics.items() if k != "model"), key=lambda kv: kv[1])
    promoted = bool(model - best > MIN_QINI_GAIN)
    others = ", ".join(f"{k} {m['qini']:.4f}" for k, m in metrics.items() if k != "model")
    decision = (f"{'promoted' if promoted else 'not promoted, ' + name + ' stays'}: Qini {model:.4f} vs {others} "
                f"(min gain {MIN_QINI_GAIN}) on held-out campaign {held_id}")
    if promoted:
        registry.promote(up, version, decision)
    registry.tag_version(up, version, {"promotion_decision": decision, "promoted": str(promoted).lower()})
    log.info("uplift gate: %s", decision)
    return promoted, decision


def log_pictures(y: np.ndarray, scores: dict[str, np.ndarray], treated: np.ndarray) -> None:
    import mlflow

    from ml.model.plots import close

    deciles = uplift_by_decile(y, scores["model"], treated)
    figures = {"plots/qini_curve.png": qini_figure(y, scores, treated),
               "plots/uplift_by_decile.png": deciles_figure(deciles)}
    for path, fig in figures.items():
        mlflow.log_figure(fig, path)
        close(fig)
    mlflow.log_dict(json.loads(deciles.reset_index().to_json(orient="records")), "uplift_by_decile.json")


# ---- for the policy ------------------------------------------------------------------------------


class UpliftEffects:
    """The champion as the policy's ``EffectModel``: the run's features, the catalog's eligibility."""

    name = "uplift"

    def __init__(self, settings: Settings, model: UpliftModel, version: str):
        self.settings, self.model, self.version = settings, model, version

    def expected_effects(self, customers: pd.DataFrame, offers: pd.DataFrame) -> np.ndarray:
        from ml.stages.decide import eligibility  # the policy's rule, one place (decide imports us lazily too)

        wanted = [c for c in self.model.learner.features if c not in customers]
        if wanted:
            customers = customers.merge(self._features(wanted), on="customer_id", how="left")
        effects = self.model.expected_effects(customers, offers)
        return np.where(eligibility(customers, offers), effects, np.nan)

    def _features(self, columns: list[str]) -> pd.DataFrame:
        with connect(self.settings, read_only=True) as con:
            have = {r[0] for r in con.execute("select column_name from information_schema.columns where "
                                              "table_schema = 'marts' and table_name = 'customer_features'").fetchall()}
            cols = ", ".join(c for c in columns if c in have)
            return fetch_frame(con, f"select customer_id{', ' + cols if cols else ''} from marts.customer_features "
                                    "where as_of_date = ?", [self.settings.as_of])


def load_effect_model(settings: Settings) -> UpliftEffects | None:
    """The uplift champion for the run's horizon, or None (one log line: why the priors decide)."""
    up = uplift_settings(settings)
    ref = registry.alias_version(up, registry.CHAMPION)
    if ref is None:
        log.info("uplift: no champion of %s (%s); the offer catalog's priors decide", up.registered_model_name,
                 _why_no_champion(up))
        return None
    model = registry.load_version(up, ref.version)
    log.info("uplift: %s v%s decides the offers' effects", ref.name, ref.version)
    return UpliftEffects(settings, model, f"{ref.name}/{ref.version}")


def _why_no_champion(up: Settings) -> str:
    """The latest version's gate decision, or that none was ever trained."""
    from mlflow.exceptions import MlflowException

    client = registry.configure(up)
    try:
        versions = client.search_model_versions(f"name = '{up.registered_model_name}'")
    except MlflowException:
        versions = []
    if not versions:
        return "never trained: the uplift stage has not run, or found no campaign history with treated and control contacts"
    latest = max(versions, key=lambda v: int(v.version))
    return f"v{latest.version} {latest.tags.get('promotion_decision', 'has no gate decision')}"
