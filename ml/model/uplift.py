"""Uplift: the expected change in the probability of staying, per customer and per offer.

Learned from past campaigns, where each contacted customer was either treated with an offer or
held out as a control. A T-learner (scikit-uplift's ``TwoModels``) fits two LightGBM classifiers of
"ordered within the horizon after the contact": one on the treated, one on the controls; the
uplift of an offer for a customer is the difference of the two probabilities. The stage's choice,
``kind="t_pooled"``, fits one pair for every offer with the offer and its channel as features, so
an offer with few contacts borrows strength from the others. Kept for the measurement
(benchmarks/results/uplift.json): ``"t_per_offer"`` (a pair per offer: its treated against every
control) and ``"t_ddr_control"`` (pooled; the treated booster also sees the control booster's
prediction). On two 10k shops the three T-learners rank the held-out campaign's true effects
about equally (per-offer a little ahead, within the noise between shops) and the pooled pair
fits in half the time; on a 4k shop every T-learner's ranking is close to random (0.0-0.06). X- and
DR-learners (written by hand in the benchmark: scikit-uplift has neither) ranked worse and are
not kept.

:class:`UpliftModel` is the MLflow pyfunc and implements the policy's ``EffectModel`` protocol
(:mod:`ml.stages.decide`): ``expected_effects(customers, offers)`` gives the absolute change in
P(stay) for every customer and catalog offer. An offer no campaign ever sent has nothing to learn
from; it keeps the catalog's prior (``churn_probability × expected_effect``).

Metrics: scikit-uplift's Qini coefficient, AUUC and uplift@k on realized outcomes
(:func:`realized_scores`); :func:`qini_with_truth` scores a ranking against known true effects
(the generator's truth), which scikit-uplift cannot: its metrics take binary outcomes only.
"""
from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

from ml.model.churn_model import FeatureSpec

OFFER, CHANNEL = "offer_code", "contact_channel"  # the treatment, as the boosters see it
KINDS = ("t_pooled", "t_per_offer", "t_ddr_control")
UPLIFT_AT_K = 0.3  # uplift@k: the top 30% of the ranking


def base_booster(seed: int = 42, threads: int = 2, **overrides):
    """The LightGBM classifier both arms use: small leaves and strong row minimums, since a
    campaign holds a few thousand contacts and a tenth of them are controls."""
    from lightgbm import LGBMClassifier

    params = dict(n_estimators=300, learning_rate=0.03, num_leaves=15, min_child_samples=40,
                  subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0,
                  random_state=seed, n_jobs=threads, verbose=-1)
    return LGBMClassifier(**{**params, **overrides})


class UpliftLearner:
    """Fit on contacts (features + treatment columns), predict the uplift of one offer."""

    def __init__(self, features: list[str], kind: str = "t_pooled", seed: int = 42, threads: int = 2,
                 booster_params: dict | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown uplift learner {kind!r} (known: {', '.join(KINDS)})")
        self.features, self.kind = list(features), kind
        self.seed, self.threads, self.booster_params = seed, threads, dict(booster_params or {})
        self.spec: FeatureSpec | None = None
        self.models: dict[str, object] = {}
        self.offers: list[str] = []  # the offers a treated contact got: the ones with a learned effect

    def _columns(self) -> list[str]:
        return self.features + ([CHANNEL] if self.kind == "t_per_offer" else [OFFER, CHANNEL])

    def _two_models(self):
        from sklift.models import TwoModels

        method = "ddr_control" if self.kind == "t_ddr_control" else "vanilla"
        return TwoModels(estimator_trmnt=base_booster(self.seed, self.threads, **self.booster_params),
                         estimator_ctrl=base_booster(self.seed + 1, self.threads, **self.booster_params),
                         method=method)

    def fit(self, contacts: pd.DataFrame, retained: np.ndarray, treated: np.ndarray) -> "UpliftLearner":
        retained, treated = np.asarray(retained, int), np.asarray(treated, int)
        self.spec = FeatureSpec.from_data(contacts, self._columns())
        X = self.spec.matrix(contacts)
        fit_params = {"categorical_feature": self.spec.categorical_indices}
        offers = contacts[OFFER].astype(str).to_numpy()
        self.offers = sorted(set(offers[treated == 1]))
        if self.kind == "t_per_offer":  # a pair per offer: its treated against every control
            for code in sorted(set(offers[treated == 1])):
                rows = (treated == 0) | (offers == code)
                self.models[code] = self._two_models().fit(
                    X[rows], retained[rows], treated[rows], fit_params, fit_params)
        else:
            self.models["*"] = self._two_models().fit(X, retained, treated, fit_params, fit_params)
        return self

    def uplift(self, customers: pd.DataFrame, offer_code: str, channel: str) -> np.ndarray:
        """P(stay | treated with ``offer_code`` through ``channel``) − P(stay | not contacted)."""
        frame = customers.assign(**{OFFER: offer_code, CHANNEL: channel})
        X = self.spec.matrix(frame)
        model = self.models[offer_code if self.kind == "t_per_offer" else "*"]
        return np.asarray(model.predict(X), float)


class UpliftModel(mlflow.pyfunc.PythonModel):
    """The registered uplift model; an ``EffectModel`` for the policy (name, version, effects)."""

    name = "uplift"

    def __init__(self, learner: UpliftLearner, channels: dict[str, str], horizon_days: int,
                 trained_on: list[str]):
        self.learner = learner
        self.channels = dict(channels)  # offer → the channel it was most often sent through
        self.horizon_days = horizon_days
        self.trained_on = list(trained_on)  # campaign ids
        self.version = "unregistered"  # the registry version, set when loaded

    @property
    def offers(self) -> list[str]:
        return self.learner.offers

    def expected_effects(self, customers: pd.DataFrame, offers: pd.DataFrame) -> np.ndarray:
        """Absolute change in P(stay) per (customer, catalog offer), sent through the catalog's
        channel; an offer never sent in a campaign keeps the prior ``churn_probability ×
        expected_effect`` (NaN without a churn probability)."""
        out = np.full((len(customers), len(offers)), np.nan)
        learned = set(self.offers)
        p_churn = (customers["churn_probability"].to_numpy(float) if "churn_probability" in customers
                   else np.full(len(customers), np.nan))
        for j, (code, channel, prior) in enumerate(zip(offers["offer_code"], offers["channel"],
                                                       offers["expected_effect"].astype(float))):
            out[:, j] = (self.learner.uplift(customers, code, channel) if code in learned
                         else p_churn * prior)
        return out

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """One column per learned offer: its uplift through its usual channel."""
        return pd.DataFrame({f"uplift_{code}": self.learner.uplift(model_input, code, self.channels[code])
                             for code in self.offers}, index=model_input.index)

    def received_uplift(self, contacts: pd.DataFrame) -> np.ndarray:
        """The uplift of the offer and channel each contact actually got (a control: would have)."""
        out = np.full(len(contacts), np.nan)
        learned = set(self.offers)
        for (code, channel), rows in contacts.groupby([OFFER, CHANNEL], sort=True).indices.items():
            if code in learned:
                out[rows] = self.learner.uplift(contacts.iloc[rows], code, channel)
        return out


# ---- metrics ---------------------------------------------------------------------------------------


def realized_scores(retained: np.ndarray, score: np.ndarray, treated: np.ndarray) -> dict[str, float]:
    """Qini coefficient, AUUC (both normalised by the perfect ranking) and uplift@30% of a ranking,
    on one campaign's realized outcomes (scikit-uplift)."""
    from sklift.metrics import qini_auc_score, uplift_at_k, uplift_auc_score

    y, t, s = np.asarray(retained, int), np.asarray(treated, int), np.asarray(score, float)
    return {"qini": float(qini_auc_score(y, s, t)), "auuc": float(uplift_auc_score(y, s, t)),
            "uplift_at_30": float(uplift_at_k(y, s, t, strategy="overall", k=UPLIFT_AT_K))}


def qini_with_truth(true_effect: np.ndarray, score: np.ndarray) -> float:
    """How well ``score`` ranks known true effects: the area between the cumulative true effect
    (customers by descending score) and the random line, over the same for the perfect ranking.
    1 = perfect, 0 = random, < 0 = worse than random."""
    effect = np.asarray(true_effect, float)
    n = len(effect)
    if n == 0:
        return float("nan")
    random_line = effect.sum() * np.arange(1, n + 1) / n

    def area(order: np.ndarray) -> float:
        return float((np.cumsum(effect[order]) - random_line).sum())

    perfect = area(np.argsort(-effect, kind="stable"))
    return area(np.argsort(-np.asarray(score, float), kind="stable")) / perfect if perfect > 0 else float("nan")


def uplift_by_decile(retained: np.ndarray, score: np.ndarray, treated: np.ndarray) -> pd.DataFrame:
    """Per decile of the ranking (highest first): treated and control counts, response rates, uplift."""
    from sklift.metrics import uplift_by_percentile

    return uplift_by_percentile(np.asarray(retained, int), np.asarray(score, float),
                                np.asarray(treated, int), strategy="overall", bins=10)


# ---- pictures (scikit-uplift's own plots need a scikit-learn older than the locked one) --------------


def qini_figure(retained: np.ndarray, scores: dict[str, np.ndarray], treated: np.ndarray):
    """Qini curves of the rankings in ``scores`` on one campaign, with the random and perfect lines."""
    from sklift.metrics import perfect_qini_curve, qini_curve

    from ml.model.plots import _figure

    y, t = np.asarray(retained, int), np.asarray(treated, int)
    fig, ax = _figure("Qini curve on the held-out campaign")
    for name, s in scores.items():
        x, gain = qini_curve(y, np.asarray(s, float), t)
        ax.plot(x, gain, lw=2 if name == "model" else 1, label=f"{name} (Qini {realized_scores(y, s, t)['qini']:.3f})")
    x, gain = perfect_qini_curve(y, t, negative_effect=True)
    ax.plot(x, gain, ls="--", c="grey", lw=1, label="perfect")
    ax.plot([0, x[-1]], [0, gain[-1]], ls=":", c="grey", label="random")
    ax.set(xlabel="contacts, by descending predicted uplift", ylabel="incremental customers retained")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def deciles_figure(deciles: pd.DataFrame):
    """Realized uplift (treated − control retention) per decile of the model's ranking."""
    from ml.model.plots import _figure

    fig, ax = _figure("Uplift by decile of the predicted uplift (held-out campaign)")
    ax.bar(range(len(deciles)), deciles["uplift"].to_numpy(float), color="tab:blue")
    ax.axhline(0, c="grey", lw=1)
    ax.set_xticks(range(len(deciles)), [str(i) for i in deciles.index], rotation=45, fontsize=7)
    ax.set(xlabel="percentile of predicted uplift (highest first)", ylabel="retained: treated − control")
    return fig
