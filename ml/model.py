"""The churn model as one MLflow pyfunc: LightGBM booster + calibrator + feature schema.

Packaging the calibrator and the categorical levels with the booster means whatever holds the
``champion`` alias is complete: scoring loads ``models:/<name>@champion`` and needs nothing else.
``contributions`` exposes LightGBM's native per-feature contributions for reason codes.
"""
from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

ID_COLUMNS = ("customer_id", "as_of_date")
LABEL_COLUMNS = ("is_churned", "is_backtest_cutoff", "horizon_days", "cutoff_role")


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """Every column of customer_features except identifiers and labels."""
    skip = set(ID_COLUMNS) | set(LABEL_COLUMNS)
    return [c for c in frame.columns if c not in skip]


def prepare_matrix(frame: pd.DataFrame, features: list[str], categories: dict[str, list[str]]) -> pd.DataFrame:
    """Select features in a fixed order; text columns become categoricals with training levels."""
    out = pd.DataFrame(index=frame.index)
    for col in features:
        if col in categories:
            out[col] = pd.Categorical(frame[col].astype("string") if col in frame else None, categories=categories[col])
        elif col in frame:
            out[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
        else:  # a feature the data no longer has: missing, never invented
            out[col] = np.nan
    return out


class ChurnModel(mlflow.pyfunc.PythonModel):
    """Calibrated churn probability for the horizon the model was trained on."""

    def __init__(self, booster, calibrator, features: list[str], categories: dict[str, list[str]], horizon_days: int):
        self.booster = booster
        self.calibrator = calibrator
        self.features = features
        self.categories = categories
        self.horizon_days = horizon_days

    def raw_score(self, frame: pd.DataFrame) -> np.ndarray:
        return self.booster.predict(prepare_matrix(frame, self.features, self.categories))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        raw = self.raw_score(frame)
        return np.clip(self.calibrator.predict(raw), 0.0, 1.0) if self.calibrator is not None else raw

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per-feature contributions to the raw (log-odds) score; the bias column is dropped."""
        X = prepare_matrix(frame, self.features, self.categories)
        contrib = self.booster.predict(X, pred_contrib=True)
        return pd.DataFrame(contrib[:, :-1], columns=self.features, index=frame.index)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return pd.DataFrame({"churn_probability": self.predict_proba(model_input)}, index=model_input.index)
