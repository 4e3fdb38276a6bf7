"""The churn model as one MLflow pyfunc: feature schema, two calibrated boosters, a value model.

Packaging everything with the booster means whatever holds the ``champion`` alias is complete:
scoring loads ``models:/<name>@champion`` and needs nothing else.

- ``production``: the booster and calibrator that score customers (fitted on every cutoff whose
  label window is complete, see ml/stages/train/);
- ``backtest``: the honest twin fitted only on labels observable at the test cutoff. The
  promotion gate compares two versions' backtest scorers on the same test cutoff, which stays
  fair even when a version's production booster has seen that cutoff's labels;
- ``value``: predicted spend over the next 365 days (BG/NBD + Gamma-Gamma, see ml/model/value.py).

Features become one float32 matrix, column by column, from a pandas frame or an Arrow table; text
columns become category codes of the training levels (unknown levels are missing, never invented).
``contributions`` exposes LightGBM's native per-feature contributions for reason codes.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import mlflow.pyfunc
import numpy as np
import pandas as pd

# LightGBM's OpenMP threads spin while waiting by default; on a shared machine that turns every
# tree into a fight for the cores (measured: 10-20x slower under load). Set before it starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ID_COLUMNS = ("customer_id", "as_of_date")
LABEL_COLUMNS = ("is_churned", "is_backtest_cutoff", "horizon_days", "cutoff_role", "is_treated_in_label_window")
# the season of the cutoff, derived from as_of_date: lets the booster learn the yearly rhythm of
# churn once the training cutoffs span a year (Settings.n_training_cutoffs = 16). With fewer, a
# scoring cutoff whose label window falls in a season no training window covered (autumn's Black
# Friday and winter peak after 7 months of spring and summer cutoffs) takes the nearest season's
# churn rate, and calibration cannot correct what it never saw (benchmarks/bench_calibration.py)
CALENDAR_FEATURES = ("cutoff_day_of_year_sin", "cutoff_day_of_year_cos")


def feature_columns(columns) -> list[str]:
    """Every column of customer_features except identifiers and labels, in table order."""
    skip = set(ID_COLUMNS) | set(LABEL_COLUMNS)
    return [c for c in columns if c not in skip]


def _column(data, name: str) -> np.ndarray | None:
    """One column of a pandas frame or an Arrow table as numpy (None when absent)."""
    if name in CALENDAR_FEATURES:
        return _calendar(data, name)
    if isinstance(data, pd.DataFrame):
        return data[name].to_numpy() if name in data.columns else None
    if name not in data.column_names:
        return None
    return data.column(name).to_numpy(zero_copy_only=False)


def _calendar(data, name: str) -> np.ndarray | None:
    as_of = _column(data, "as_of_date")
    if as_of is None:
        return None
    angle = 2 * np.pi * (pd.DatetimeIndex(pd.to_datetime(as_of)).day_of_year.to_numpy(float) - 1) / 365.25
    return np.sin(angle) if name.endswith("_sin") else np.cos(angle)


def is_text(values: np.ndarray) -> bool:
    return values.dtype == object or values.dtype.kind in ("U", "S", "T")


@dataclass
class FeatureSpec:
    """Which columns feed the booster, in which order, and the levels of the text columns."""

    features: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)
    medians: dict[str, float] = field(default_factory=dict)  # typical value, for reason wording

    @classmethod
    def from_data(cls, data, features: list[str], median_rows: int = 200_000) -> "FeatureSpec":
        """Levels of the text columns (all rows) and medians (a fixed sample of rows) from ``data``."""
        n = len(data) if isinstance(data, pd.DataFrame) else data.num_rows
        sample = np.sort(np.random.default_rng(0).choice(n, median_rows, replace=False)) if n > median_rows else None
        categories, medians = {}, {}
        for name in features:
            values = _column(data, name)
            if is_text(values):
                present = pd.Series(values).dropna().astype(str)
                categories[name] = sorted(present.unique().tolist())
            else:
                numeric = (values if sample is None else values[sample]).astype(float)
                medians[name] = float(np.nanmedian(numeric)) if np.isfinite(numeric).any() else 0.0
        return cls(features, categories, medians)

    @property
    def input_columns(self) -> list[str]:
        """The data columns the matrix is built from (calendar features come from as_of_date)."""
        raw = [f for f in self.features if f not in CALENDAR_FEATURES]
        return raw + (["as_of_date"] if len(raw) < len(self.features) else [])

    @property
    def categorical_indices(self) -> list[int]:
        return [i for i, name in enumerate(self.features) if name in self.categories]

    def matrix(self, data) -> np.ndarray:
        """The booster's input: float32, one column per feature, NaN where unknown. Filled feature
        by feature into a feature-major array, then transposed in one copy (writing a column of a
        row-major matrix touches a cache line per value: ~2x slower at a million rows)."""
        n = len(data) if isinstance(data, pd.DataFrame) else data.num_rows
        out = np.full((len(self.features), n), np.nan, dtype=np.float32)
        for j, name in enumerate(self.features):
            values = _column(data, name)
            if values is None:
                continue  # a feature the data no longer has: missing, never invented
            if name in self.categories:
                text = pd.Series(values, dtype="object").where(pd.notna(values), None).astype("string")
                codes = pd.Index(self.categories[name], dtype="string").get_indexer(text)  # -1: unknown or missing
                out[j] = np.where(codes >= 0, codes, np.nan)
            elif values.dtype.kind in "fiub":  # numbers (missing already NaN): a plain cast
                out[j] = values
            else:
                out[j] = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(np.float32, na_value=np.nan)
        return np.ascontiguousarray(out.T)

    def value_side(self, data) -> "ValueSides":
        """Per feature: 1 above the training median, 0 at or below, -1 missing (a reason's wording)."""
        return ValueSides(self, data)


class ValueSides(Mapping):
    """Each feature's value side (1 above the training median, 0 at or below, -1 missing), computed
    when first read: reasons word only the few features they pick, so only those columns are
    compared (all 70 of 950k customers: 0.5 s)."""

    def __init__(self, spec: FeatureSpec, data):
        self.spec, self.data, self.computed = spec, data, {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.spec.features:
            raise KeyError(name)
        if name not in self.computed:
            values = _column(self.data, name)
            n = len(self.data) if isinstance(self.data, pd.DataFrame) else self.data.num_rows
            if name in self.spec.medians and values is not None:
                v = (values.astype(float, copy=False) if values.dtype.kind in "fiub"
                     else pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float))
                side = np.where(np.isnan(v), -1, (v > self.spec.medians[name]).astype(np.int8)).astype(np.int8)
            else:
                side = np.zeros(n, dtype=np.int8)
            self.computed[name] = side
        return self.computed[name]

    def __iter__(self):
        return iter(self.spec.features)

    def __len__(self) -> int:
        return len(self.spec.features)


@dataclass
class Scorer:
    """A booster, the number of trees to use, and the calibrator from its margin to a probability."""

    booster: object
    num_iteration: int
    calibrator: object | None

    def margin(self, X: np.ndarray) -> np.ndarray:
        return self.booster.predict(X, num_iteration=self.num_iteration, raw_score=True)

    def proba(self, X: np.ndarray) -> np.ndarray:
        return self.proba_from_margin(self.margin(X))

    def proba_from_margin(self, margin: np.ndarray) -> np.ndarray:
        """The calibrated probability of an already computed margin (a caller that also needs the
        margin predicts once)."""
        if self.calibrator is None:
            return 1.0 / (1.0 + np.exp(-margin))
        return np.clip(self.calibrator.predict(margin), 0.0, 1.0)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature contributions to the margin (log-odds); the bias column is dropped."""
        return self.booster.predict(X, num_iteration=self.num_iteration, pred_contrib=True)[:, :-1]


class ChurnModel(mlflow.pyfunc.PythonModel):
    """Calibrated churn probability for the horizon the model was trained on, and 365-day value."""

    def __init__(self, spec: FeatureSpec, production: Scorer, backtest: Scorer, horizon_days: int, value=None):
        self.spec = spec
        self.production = production
        self.backtest = backtest
        self.horizon_days = horizon_days
        self.value = value

    @property
    def features(self) -> list[str]:
        return self.spec.features

    def predict_proba(self, frame) -> np.ndarray:
        return self.production.proba(self.spec.matrix(frame))

    def backtest_proba(self, frame) -> np.ndarray:
        """The honest twin's probability: what the promotion gate compares on a test cutoff."""
        return self.backtest.proba(self.spec.matrix(frame))

    def contributions(self, frame: pd.DataFrame, matrix: np.ndarray | None = None) -> pd.DataFrame:
        """LightGBM's exact TreeSHAP contributions per feature (``pred_contrib`` without the bias),
        computed once per distinct route through each tree (ml/model/contributions.py); ``matrix``: the
        frame's ``spec.matrix`` when the caller already has it."""
        return self.explain(frame, matrix)[1]

    def explain(self, frame: pd.DataFrame, matrix: np.ndarray | None = None) -> tuple[np.ndarray, pd.DataFrame]:
        """(calibrated probability, contributions) of the production scorer in one pass over the
        trees: the probability comes from the same margin ``predict_proba`` computes (bit for bit),
        so scoring never predicts twice."""
        from ml.model.contributions import explain

        X = self.spec.matrix(frame) if matrix is None else matrix
        contrib, margin = explain(self.production.booster, X, self.production.num_iteration)
        return (self.production.proba_from_margin(margin),
                pd.DataFrame(contrib, columns=self.features, index=frame.index, copy=False))

    def value_side(self, frame) -> ValueSides:
        return self.spec.value_side(frame)

    def predicted_value(self, frame: pd.DataFrame) -> np.ndarray:
        """Expected spend over the next 365 days (NaN-free; zero without a value model)."""
        if self.value is None:
            return np.zeros(len(frame))
        return self.value.predict(frame)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return pd.DataFrame({"churn_probability": self.predict_proba(model_input)}, index=model_input.index)
