"""One settings object from which every path and knob flows: the run context.

Values come from keyword overrides first, then ``CHURNWATCH_*`` environment variables, then
defaults, so the CLI, the DAG tasks and the tests configure the pipeline the same way. A default
that dbt shares (horizon, cutoffs, marts knobs, DuckDB resources) is read from the dbt file that
holds it (``ml.core.defaults``); every other default is written here, once.

A run builds its Settings once, at its start (``ml.core.context.resolve_run`` fixes the as-of
date), and carries them as one value: ``to_dict()`` / ``from_dict()`` (XCom between Airflow tasks).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from ml.core import defaults
from ml.core.defaults import REPO_ROOT
# dbt sums money exactly as DECIMAL(18, 4) (dbt_project/macros/exact_aggregates.sql): amounts
# stay below 10^14, so max_amount (the row-fault bound ingest enforces) must too
MAX_SUMMABLE_AMOUNT = 1e14


def _env(name: str, default):
    raw = os.environ.get(f"CHURNWATCH_{name.upper()}")
    if raw is None:
        return default
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, Path):
        return Path(raw)
    return raw


@dataclass(frozen=True)
class Settings:
    # where things live
    warehouse: Path = Path("warehouse")
    raw_dir: Path | None = None
    dbt_project_dir: Path = REPO_ROOT / "dbt_project"
    # what to compute
    as_of: dt.date | None = None  # None: latest order date in the raw data
    horizon_days: int = int(defaults.var("horizon_days"))
    cutoff_step_days: int = int(defaults.var("cutoff_step_days"))  # spacing of training cutoffs
    # full-label cutoffs (incl. the backtest one): why 16, see dbt_project.yml
    n_training_cutoffs: int = int(defaults.var("n_training_cutoffs"))
    # data quality
    max_bad_row_share: float = 0.05  # above it a source is a batch fault and the run stops
    # input formats (README "Bring your own data"): "orders=%d/%m/%Y; events=%d/%m/%Y %H:%M", or one
    # format for every source; tried before ISO 8601, which is always read (ml/core/contract.py)
    timestamp_formats: str = ""
    max_amount: float = 1_000_000.0  # an order amount or price above it is a row fault (< 1e14)
    feature_drift_sd: float = 0.5  # a feature mean may move this many of last good run's SDs; 0: off
    max_feature_staleness_days: int = 14  # the freshest customer's last order, days before as-of
    quality_max_rows: int = 2_000_000  # larger raw tables are gated on a sample of this many rows
    data_docs_keep_runs: int = 30  # Data Docs folders kept under <warehouse>/data_docs
    # model and registry
    model_name: str = "churnwatch_churn"
    retrain: bool = False
    seed: int = 42
    promotion_min_auc_gain: float = 0.002
    promotion_max_ece_increase: float = 0.01
    train_search_trials: int = 6  # LightGBM settings tried (the defaults first), each cross-fitted
    train_cv_folds: int = 3  # customer folds for early stopping and out-of-fold calibration
    train_refit: bool = True  # production booster refitted on every full-label cutoff
    train_backtest_origins: int = 3  # rolling origins: the test cutoff and the ones before it
    # above these row counts a stable sample of whole customers is used (see ml/stages/train.py): the
    # boosters' fit, and the search and rolling origins (benchmarks/results/model-M.json)
    # (measured at tier M on 2 shared cores: 0.3 M → 1 M rows bought +0.001 AUC for 3x the time)
    train_max_rows: int = 500_000
    train_search_max_rows: int = 150_000
    train_calibration_max_rows: int = 500_000  # out-of-fold rows the calibrators are fitted on, at most
    train_threads: int = 2
    # leave out training examples contacted (not held out) inside their label window, so the churn
    # model estimates the risk if the shop does nothing. Off by default: it raised the untreated AUC by
    # only 0.0005 / 0.0020 (benchmarks/results/intervention-labels.json) but put the demo shop's realized
    # ECE at 0.0235, over the 0.02 target (tests/pipeline/test_calibration_realized.py; 0.0146 with it off)
    train_exclude_treated: bool = False
    calibration_method: str = "auto"  # auto | isotonic | platt
    mlflow_tracking_uri: str | None = None  # default: sqlite under the warehouse
    # retention
    campaign_budget: float = 10_000.0
    control_share: float = 0.10  # of each campaign's audience, held out by a stable hash
    # at most this share of the scored customers is contacted, the best by expected net value: a
    # real campaign, whatever the budget (10,000 reached 8,513 of 9,510 customers of the tier-S shop,
    # so targeting could not matter; benchmarks/results/budget-S.json). 1.0: only the budget limits
    contact_share: float = 0.15
    exploration_share: float = 0.05  # of the budget (money, and contacts), spent on randomly drawn offers
    effect_model: str = "auto"  # "auto": the uplift champion if any, else the catalog priors; "prior": always the priors
    risk_tier_high: float = 0.50  # calibrated churn probability at or above: risk tier "high"
    risk_tier_medium: float = 0.25  # ... at or above (and below high): "medium"; else "low"
    value_tier_high_share: float = 0.20  # top share of predicted value: value tier "high"
    value_tier_medium_share: float = 0.30  # the next share: "medium"; the rest "low"
    risk_alert_min_increase: float = float(defaults.var("risk_alert_min_increase"))  # probability rise that alerts
    # resources
    duckdb_memory_limit: str = defaults.duckdb_memory_limit()  # profiles.yml says why
    duckdb_threads: int = defaults.duckdb_threads()
    # security: salt for hashing PII, never committed; tests and demo set their own
    pii_salt: str = field(default="", repr=False)

    @classmethod
    def load(cls, **overrides) -> "Settings":
        """Build settings from overrides > CHURNWATCH_* env vars > defaults."""
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in overrides and overrides[f.name] is not None:
                values[f.name] = overrides[f.name]
                continue
            default = f.default if f.default is not dataclasses.MISSING else None
            if f.name in ("raw_dir", "as_of", "mlflow_tracking_uri"):
                raw = os.environ.get(f"CHURNWATCH_{f.name.upper()}")
                values[f.name] = raw if raw else default
            else:
                values[f.name] = _env(f.name, default)
        s = cls(**values)
        return s._normalised()

    def _normalised(self) -> "Settings":
        if not 0 < float(self.max_amount) < MAX_SUMMABLE_AMOUNT:
            raise ValueError(f"max_amount must be above 0 and below {MAX_SUMMABLE_AMOUNT:.0e}"
                             f" (dbt sums money as DECIMAL(18, 4)), got {self.max_amount}")
        if self.timestamp_formats:  # a typo in a format fails here, before any stage runs
            from ml.core.contract import timestamp_formats

            timestamp_formats(self.timestamp_formats)
        as_of = self.as_of
        if isinstance(as_of, str):
            as_of = dt.date.fromisoformat(as_of[:10])
        elif isinstance(as_of, dt.datetime):
            as_of = as_of.date()
        return dataclasses.replace(
            self,
            warehouse=Path(self.warehouse).resolve(),
            raw_dir=Path(self.raw_dir).resolve() if self.raw_dir else None,
            dbt_project_dir=Path(self.dbt_project_dir).resolve(),
            as_of=as_of,
        )

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)._normalised()

    # ---- derived paths -------------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.warehouse / "churnwatch.duckdb"

    @property
    def analytics_path(self) -> Path:
        return self.warehouse / "analytics.duckdb"

    @property
    def published_dir(self) -> Path:
        return self.warehouse / "published"

    @property
    def crm_export_dir(self) -> Path:
        return self.warehouse / "exports" / "crm"

    @property
    def mlflow_dir(self) -> Path:
        return self.warehouse / "mlflow"

    @property
    def data_docs_dir(self) -> Path:
        return self.warehouse / "data_docs"

    @property
    def campaign_id(self) -> str:
        """One campaign per scoring run: the same as-of date and horizon give the same id."""
        return f"CW-{self.as_of:%Y%m%d}-H{self.horizon_days}"

    @property
    def registered_model_name(self) -> str:
        """One registered model per horizon: a 60-day and a 90-day model never compete."""
        return f"{self.model_name}_{self.horizon_days}d"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        return (self.mlflow_dir / "artifacts").as_uri()

    def as_env(self, exclude: tuple[str, ...] = ()) -> dict[str, str]:
        """The settings as CHURNWATCH_* variables, to hand to a subprocess or an Airflow run
        (``exclude``: fields the child receives another way, e.g. in the trigger form)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None or f.name == "pii_salt" or f.name in exclude:
                continue
            out[f"CHURNWATCH_{f.name.upper()}"] = str(v)
        return out

    # ---- the one serialised value a run carries ---------------------------------------------
    def to_dict(self) -> dict:
        """Every field as JSON-safe values (paths and the date as text), the secret left out:
        the value an Airflow run hands from task to task."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in SECRET_FIELDS:
                continue
            v = getattr(self, f.name)
            out[f.name] = v.isoformat() if isinstance(v, dt.date) else str(v) if isinstance(v, Path) else v
        return out

    @classmethod
    def from_dict(cls, values: dict) -> "Settings":
        """The Settings ``to_dict`` wrote, exactly; the secret comes from the environment (it never
        travels in the serialised value)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"not Settings fields: {sorted(unknown)}")
        secrets = {name: _env(name, cls.__dataclass_fields__[name].default) for name in SECRET_FIELDS}
        return cls(**values, **secrets)._normalised()


SECRET_FIELDS = ("pii_salt",)


def settings_from_params(params: dict, **extra) -> Settings:
    """Settings for one DAG run: the trigger form's params over the environment's defaults."""
    mapping = {
        "raw_dir": params.get("raw_dir") or None,
        "warehouse": params.get("warehouse") or None,
        "as_of": params.get("as_of_date") or None,
        "horizon_days": params.get("horizon_days"),
        "retrain": params.get("retrain"),
        "campaign_budget": params.get("campaign_budget"),
        "control_share": params.get("control_share"),
    }
    mapping.update({k: v for k, v in extra.items() if v is not None})
    return Settings.load(**mapping)
