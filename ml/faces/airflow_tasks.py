"""The churnwatch Airflow tasks, defined once and composed by every DAG in ``dags/``.

Each task is a thin face over one stage in ``ml/``: it reads the run's Settings from the run dict
and calls the stage. The DAG files
only pick tasks from here and wire them, so the one-shot ``churn_pipeline`` and the scheduled
``churn_features`` / ``churn_training`` / ``churn_scoring`` run exactly the same code.

Conventions every task follows:

- the first task of a DAG builds the run's Settings once — from the trigger form's params and the
  environment, the as-of date resolved (by ingest, else ``ml.core.context.resolve_run``) — and
  returns the *run* dict: ``{"context": Settings.to_dict(), "dbt_vars": ..., "marts_vars": ...,
  "dbt_env": ...}`` (the last three derived from the context, for the Cosmos templates). Every later
  task takes it, reads its Settings back (``context_of``) and returns it, adding what it produced
  (``ingested``, ``training``, ``scored``, ``campaign``), so dependencies follow the data;
- every task touches the warehouse's DuckDB file, which allows one writer at a time, so they all
  run in the one-slot pool ``duckdb_writer`` (``make up`` and the e2e tests create it);
- transient faults are retried with exponential backoff; a fault a person must fix (a failed gate,
  a bad batch, any ``ml.core.errors.InputError`` such as a history too short for the horizon) raises
  ``AirflowFailException`` with the plain message: no retry, the run stops, nothing is published;
- a failed task appends one alert line to ``<warehouse>/alerts/alerts.jsonl`` and logs it;
- under ``churnwatch run`` every task start, end, retry and failure is appended to the run's
  progress file (``ml.faces.orchestrate.PROGRESS_ENV``), which the command shows as one line per stage.

Nothing heavy is imported here at module level: DAG files import this module at parse time.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import time
from pathlib import Path

from airflow.sdk import Param, get_current_context, task

from ml.core.dbt import FEATURES_SELECT, MARTS_SELECT
from ml.core.settings import REPO_ROOT, Settings
from ml.faces.assets import ANALYST_CATALOG, CHAMPION_MODEL, CUSTOMER_FEATURES, RAW_LAYER
from ml.faces.orchestrate import MANIFEST_PATH, PROGRESS_ENV

log = logging.getLogger("churnwatch.airflow")

POOL = "duckdb_writer"  # one slot: DuckDB allows one writer per file
DBT_PROJECT_DIR = Path(os.environ.get("CHURNWATCH_DBT_PROJECT_DIR", REPO_ROOT / "dbt_project"))


# ---- trigger form ----------------------------------------------------------------------------

def params(*, retrain_default: bool = False) -> dict[str, Param]:
    """The trigger form: every field titled and explained; its defaults are Settings'."""
    return {
        "as_of_date": Param(
            None, type=["null", "string"], format="date", title="As-of date",
            description="Score customers as of this day (YYYY-MM-DD). Empty: the last order date in the data.",
        ),
        "horizon_days": Param(
            Settings.horizon_days, type="integer", minimum=7, maximum=365, title="Horizon (days)",
            description="A customer has churned if they place no order within this many days after the as-of date. "
                        "Each horizon has its own model.",
        ),
        "retrain": Param(
            retrain_default, type="boolean", title="Retrain the model",
            description="Train a challenger and run the promotion gate before scoring "
                        "(a model is always trained when the horizon has no champion yet).",
        ),
        "campaign_budget": Param(
            Settings.campaign_budget, type="number", minimum=0, title="Campaign budget",
            description="Spend cap for the retention campaign built from these scores (offer costs summed).",
        ),
        "control_share": Param(
            Settings.control_share, type="number", minimum=0, maximum=0.5, title="Control share",
            description="Share of the campaign audience kept out of contact, to measure the campaign's effect.",
        ),
        "raw_dir": Param(
            os.environ.get("CHURNWATCH_RAW_DIR", ""), type="string", title="Raw data folder",
            description="Folder with orders (required) and the optional sources, CSV or Parquet.",
        ),
        "warehouse": Param(
            os.environ.get("CHURNWATCH_WAREHOUSE", "warehouse"), type="string", title="Warehouse folder",
            description="Where churnwatch.duckdb, analytics.duckdb, exports and the MLflow store live.",
        ),
    }


# ---- failure handling ------------------------------------------------------------------------

def record_alert(context) -> None:
    """Failure callback: one JSON line in ``<warehouse>/alerts/alerts.jsonl`` and one clear log line."""
    ti = context.get("ti") or context.get("task_instance")
    exc = context.get("exception")
    message = plain_message(exc) if exc is not None else "task failed"
    alert = {
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "dag_id": getattr(ti, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": getattr(ti, "run_id", None) or context.get("run_id"),
        "try_number": getattr(ti, "try_number", None),
        "kind": "data_quality" if _is_data_fault(exc) else "error",
        "error": message,  # plain words: what the operator reads; the class is kept apart for diagnosis
        "exception": _root_cause_name(exc),
    }
    _progress("failed", context, error=message, kind=alert["kind"])
    log.error("CHURNWATCH ALERT %s.%s failed (%s): %s", alert["dag_id"], alert["task_id"], alert["kind"], alert["error"])
    try:
        from ml.core.settings import settings_from_params

        warehouse = settings_from_params(dict(context.get("params") or {})).warehouse
        path = warehouse / "alerts" / "alerts.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(alert, default=str) + "\n")
    except Exception as write_error:  # an alert must never mask the failure it reports
        log.error("could not record the alert: %s", write_error)


def plain_message(exc: BaseException) -> str:
    """The first line of an error's message, without class names: what a person reads."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _root_cause_name(exc: BaseException | None) -> str | None:
    """The class of the error that started it all (the one under AirflowFailException)."""
    while exc is not None and exc.__cause__ is not None:
        exc = exc.__cause__
    return type(exc).__name__ if exc is not None else None


def _is_data_fault(exc: BaseException | None) -> bool:
    """A fault in the input, which a retry cannot cure: an ``InputError`` (a failed gate, a bad
    batch, a history too short), raised or the cause of what was raised."""
    from ml.core.errors import InputError

    return any(isinstance(e, InputError) for e in (exc, getattr(exc, "__cause__", None)))


@contextlib.contextmanager
def data_faults_fail_fast():
    """Turn a fault in the input into AirflowFailException (no retry: bad data stays bad), with
    the plain first line of its message; the full error stays chained for the task log."""
    try:
        yield
    except Exception as exc:
        if _is_data_fault(exc):
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(plain_message(exc)) from exc
        raise


# ---- progress for `churnwatch run` ---------------------------------------------------------------

def _progress(event: str, context, **fields) -> None:
    """Append one JSON line to the run's progress file; a no-op outside ``churnwatch run``."""
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return
    ti = context.get("ti") or context.get("task_instance")
    line = {"event": event, "task_id": getattr(ti, "task_id", None), "try_number": getattr(ti, "try_number", None),
            "at": time.time(), **fields}
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, default=str) + "\n")
    except OSError as error:  # progress is a courtesy: it must never fail a task
        log.warning("could not record progress: %s", error)


def progress_note(task_id: str, value) -> str:
    """A few words on what a task produced, read from its return value (the run dict)."""
    if not isinstance(value, dict):
        return ""
    if task_id == "ingest" and isinstance(value.get("ingested"), dict):
        staged = sum(int(s.get("rows_staged", 0)) for s in value["ingested"].values())
        bad = sum(int(s.get("rows_quarantined", 0)) for s in value["ingested"].values())
        return f"{staged:,} rows" + (f", {bad:,} quarantined" if bad else "")
    if task_id.startswith("validate_"):
        return "passed"
    if task_id == "train_uplift":  # before the churn model's note, which the run dict also carries
        uplift = value.get("uplift") or {}
        return str(uplift.get("decision") or uplift.get("reason") or uplift.get("status") or "")
    if task_id.startswith("train") and value.get("training"):
        training = value["training"]
        if isinstance(training, dict):
            return f"model v{training.get('model_version')}: {training.get('decision', '')}".strip()
        return str(training)
    if task_id == "score" and isinstance(value.get("scored"), dict):
        return f"{int(value['scored'].get('rows', 0)):,} customers"
    if task_id == "decide_retention" and isinstance(value.get("campaign"), dict):
        campaign = value["campaign"]
        return f"{int(campaign.get('audience', 0)):,} in the audience ({int(campaign.get('control', 0)):,} control)"
    if task_id == "publish":
        export = value.get("crm_export") or {}
        return f"{len(value.get('tables', []))} tables" + (f", CRM export {int(export['rows']):,} rows" if "rows" in export else "")
    return ""


def progress_started(context) -> None:
    _progress("started", context)


def progress_finished(context) -> None:
    if not os.environ.get(PROGRESS_ENV):  # not under `churnwatch run`: no XCom round trip
        return
    ti = context.get("ti") or context.get("task_instance")
    try:
        note = progress_note(ti.task_id, ti.xcom_pull(task_ids=ti.task_id))
    except Exception:  # a note is optional; the task has succeeded
        note = ""
    _progress("finished", context, note=note)


def progress_retrying(context) -> None:
    exc = context.get("exception")
    _progress("retrying", context, error=plain_message(exc) if exc is not None else "")


DEFAULT_ARGS = {
    "owner": "churnwatch",
    "pool": POOL,
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=20),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": dt.timedelta(minutes=10),
    "on_failure_callback": record_alert,
    "on_execute_callback": progress_started,
    "on_success_callback": progress_finished,
    "on_retry_callback": progress_retrying,
}
TAGS = ["churnwatch"]


def dag_kwargs(doc_md: str, tag: str, *, retrain_default: bool = False) -> dict:
    """What every churnwatch DAG shares: start date, no catch-up, one run at a time, the form,
    the operational defaults, owner and tags; each DAG file adds its id and schedule."""
    import pendulum

    return {
        "start_date": pendulum.datetime(2024, 1, 1, tz="UTC"),
        "catchup": False,
        "max_active_runs": 1,
        "params": params(retrain_default=retrain_default),
        "default_args": DEFAULT_ARGS,
        "tags": [*TAGS, tag],
        "doc_md": doc_md,
    }


# ---- the run dict ----------------------------------------------------------------------------

def context_from_params() -> Settings:
    """The run's Settings as the first task builds them: the trigger form over the environment."""
    from ml.core.settings import settings_from_params

    return settings_from_params(dict(get_current_context()["params"]))


def context_of(run: dict) -> Settings:
    """The run's Settings, read back from the run dict (never rebuilt from the params or the environment)."""
    return Settings.from_dict(run["context"])


def run_info(settings: Settings, **extra) -> dict:
    """The run dict handed from task to task (small: the context and what tasks add, never data)."""
    from ml.core.dbt import dbt_env, dbt_vars
    from ml.stages.decide import marts_vars

    return {
        "context": settings.to_dict(),
        # derived from the context, for the Cosmos task groups' templates
        "dbt_vars": dbt_vars(settings),
        "marts_vars": marts_vars(settings),
        "dbt_env": dbt_env(settings),
        **extra,
    }


# ---- tasks -----------------------------------------------------------------------------------

@task(outlets=[RAW_LAYER])
def ingest(**context) -> dict:
    """Load raw exports into DuckDB raw.* (bad rows to quarantine.*); resolve the run's as-of date."""
    from ml.stages.ingest import ingest as run_ingest

    settings = context_from_params()
    with data_faults_fail_fast():
        report = run_ingest(settings, run_id=context["run_id"])
    sources = {name: {k: s[k] for k in ("rows_read", "rows_staged", "rows_quarantined") if k in s}
               for name, s in report.to_dict().get("sources", {}).items()}
    context["outlet_events"][RAW_LAYER].extra = {"as_of": report.as_of.isoformat(), "sources": sources}
    return run_info(settings.replace(as_of=report.as_of), ingested=sources)


@task
def validate_raw(run: dict) -> dict:
    """Great Expectations gate on the raw layer (contract, volumes, freshness)."""
    from ml.stages.gates import gate_raw

    with data_faults_fail_fast():
        gate_raw(context_of(run))
    return run


@task
def resolve_run(**context) -> dict:
    """Resolve the run: the form's as-of date, else the features event that triggered it, else the last ingest."""
    from ml.core.context import resolve_run as resolve

    settings = context_from_params()
    event = _latest_features_event(context)
    if event:
        settings = settings.replace(
            as_of=settings.as_of or event.get("as_of"),
            horizon_days=event.get("horizon_days") or settings.horizon_days,
            warehouse=event.get("warehouse") or settings.warehouse,
        )
    with data_faults_fail_fast():
        settings = resolve(settings)
    log.info("run resolved: as_of=%s horizon=%sd warehouse=%s", settings.as_of, settings.horizon_days, settings.warehouse)
    return run_info(settings)


def _latest_features_event(context) -> dict | None:
    events = context.get("triggering_asset_events") or {}
    latest = None
    for asset_events in events.values():
        for event in asset_events:
            if getattr(event, "asset", None) is not None and getattr(event.asset, "uri", None) != CUSTOMER_FEATURES.uri:
                continue
            latest = dict(event.extra or {})
    return latest


@task(task_id="dbt_features")
def build_features_in_one_step(run: dict) -> dict:
    """dbt build of staging, intermediate and the feature marts (used when no dbt manifest is compiled)."""
    from ml.stages.features import build_features

    build_features(context_of(run))
    return run


@task
def prepare_feature_rebuild(run: dict) -> dict:
    """Before the per-model feature tasks: delete what past days changed by a re-export feed
    (or drop the incremental tables when the feature SQL changed), as build_features does."""
    from ml.stages.features import rebuild

    rebuild.prepare(context_of(run), drop_for_full_refresh=True)
    return run


@task
def record_feature_inputs(run: dict) -> dict:
    """After the per-model feature tasks: record the inputs the features were built from."""
    from ml.stages.features import rebuild

    rebuild.record(context_of(run))
    return run


@task
def validate_features(run: dict) -> dict:
    """Great Expectations gate on customer_features at the scoring cutoff."""
    from ml.stages.gates import gate_features

    with data_faults_fail_fast():
        gate_features(context_of(run))
    return run


@task(outlets=[CUSTOMER_FEATURES])
def announce_features(run: dict, **context) -> dict:
    """Emit the features Asset with the as-of date, so churn_scoring scores exactly these features."""
    settings = context_of(run)
    context["outlet_events"][CUSTOMER_FEATURES].extra = {
        "as_of": settings.as_of.isoformat(), "horizon_days": settings.horizon_days, "warehouse": str(settings.warehouse),
    }
    return run


@task
def train_if_needed(run: dict) -> dict:
    """Train a challenger and run the promotion gate when asked, or when the horizon has no champion."""
    from ml.stages.train import train_if_needed as run_train

    with data_faults_fail_fast():
        outcome = run_train(context_of(run))
    log.info("training: %s", outcome)
    return {**run, "training": outcome}


@task(outlets=[CHAMPION_MODEL])
def train_challenger(run: dict) -> dict:
    """Train a challenger, register it in MLflow and run the promotion gate (moves `champion` if better)."""
    from ml.stages.train import train

    with data_faults_fail_fast():
        result = train(context_of(run).replace(retrain=True)).to_dict()
    log.info("challenger v%s: %s", result.get("model_version"), result.get("decision"))
    return {**run, "training": result}


@task
def train_uplift(run: dict) -> dict:
    """Train the uplift model on past campaigns, gate it against the priors (skipped without campaign history)."""
    from ml.stages.uplift import train_uplift_if_needed

    with data_faults_fail_fast():
        result = train_uplift_if_needed(context_of(run))
    return {**run, "uplift": {k: v for k, v in result.items() if isinstance(v, (str, int, float, bool))}}


@task
def score(run: dict, **context) -> dict:
    """Score every active customer with the champion: probability, tier, reasons, value at risk."""
    from ml.stages.score import score as run_score

    with data_faults_fail_fast():
        # the run's own time, never now(): logical date when set (scheduled, dag.test), else run_after
        scored_at = context.get("logical_date") or context["dag_run"].run_after
        scored = run_score(context_of(run), scored_at=scored_at)
    return {**run, "scored": scored if isinstance(scored, (dict, str, int)) else str(scored)}


@task
def validate_scores(run: dict) -> dict:
    """Great Expectations gate on the scores before anything is built on them."""
    from ml.stages.gates import gate_scores

    with data_faults_fail_fast():
        gate_scores(context_of(run))
    return run


@task
def decide_retention(run: dict) -> dict:
    """Pick the campaign audience under the budget, with a random control group."""
    from ml.stages.decide import decide

    with data_faults_fail_fast():
        decided = decide(context_of(run))
    return {**run, "campaign": {k: v for k, v in (decided or {}).items() if isinstance(v, (str, int, float, bool))}}


@task(task_id="dbt_crm_marts")
def build_marts_in_one_step(run: dict) -> dict:
    """dbt build of the seeds and the crm and analytics marts (the one-shot job, or no dbt manifest compiled)."""
    from ml.stages.decide import build_marts

    build_marts(context_of(run))
    return run


@task(outlets=[ANALYST_CATALOG])
def publish(run: dict) -> dict:
    """Write Parquet snapshots, the CRM export, and swap in the analyst catalog atomically."""
    from ml.stages.publish import publish as run_publish

    settings = context_of(run)
    with data_faults_fail_fast():
        return {"as_of": settings.as_of.isoformat(), "horizon_days": settings.horizon_days, **run_publish(settings)}


# ---- dbt through Cosmos ----------------------------------------------------------------------

def dbt_group(group_id: str, select: tuple[str, ...], run, vars_key: str):
    """A Cosmos task group: each dbt model (and its tests) one Airflow task, rendered from the
    compiled manifest (nothing runs at parse time), its vars and environment rendered from the run
    dict that ``run`` (the task output carrying it) returns. Returns None when the project has no
    node in ``select`` or no manifest is compiled yet (``make setup``/``churnwatch run`` compile it)."""
    if not MANIFEST_PATH.exists():
        log.warning("no dbt manifest at %s; dbt runs as one task (run `make setup`)", MANIFEST_PATH)
        return None
    from cosmos import (DbtTaskGroup, ExecutionConfig, ExecutionMode, InvocationMode, LoadMode, ProfileConfig,
                        ProjectConfig, RenderConfig, TestBehavior)

    from ml.core.dbt import DBT_ENV_KEYS

    project = ProjectConfig(dbt_project_path=DBT_PROJECT_DIR, manifest_path=MANIFEST_PATH, project_name="churnwatch")
    # a local file: read it as one (Airflow's ObjectStoragePath would load every plugin to track lineage)
    project.manifest_path = MANIFEST_PATH
    xcom = "ti.xcom_pull(task_ids=%r)" % run.operator.task_id
    group = DbtTaskGroup(
        group_id=group_id,
        project_config=project,
        profile_config=ProfileConfig(profile_name="churnwatch", target_name="dev",
                                     profiles_yml_filepath=DBT_PROJECT_DIR / "profiles.yml"),
        execution_config=ExecutionConfig(execution_mode=ExecutionMode.LOCAL,
                                         invocation_mode=InvocationMode.DBT_RUNNER),
        render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST, select=list(select),
                                   test_behavior=TestBehavior.AFTER_EACH, emit_datasets=False),
        operator_args={
            # the run's dates and knobs, from the run's one context; JSON is valid YAML for --vars
            "vars": "{{ %s[%r] | tojson }}" % (xcom, vars_key),
            "env": {key: "{{ %s['dbt_env'][%r] }}" % (xcom, key) for key in DBT_ENV_KEYS},
            "install_deps": False,
            "pool": POOL,
        },
    )
    return group if group.children else None


def features_step(run, per_model: bool = True):
    """staging → intermediate → marts/features: one Cosmos task per model and per model's tests,
    or (``per_model=False``, the one-shot job) a single ``dbt build`` of the layer."""
    group = dbt_group("dbt_features", FEATURES_SELECT, run, vars_key="dbt_vars") if per_model else None
    if group is None:
        return build_features_in_one_step(run)
    # re-exports that rewrote past days are found and rebuilt around the group (ml/stages/features/rebuild.py)
    prepare_feature_rebuild(run) >> group
    recorded = record_feature_inputs(run)
    group >> recorded
    return recorded


def marts_step(upstream, run, per_model: bool = True):
    """The seeds and the crm and analytics marts after ``upstream``: one Cosmos task per node and
    per model's tests, or (``per_model=False``) a single ``dbt build`` of the same selection.
    ``run`` is the task output carrying the run dict (the Cosmos templates read it)."""
    group = dbt_group("dbt_crm_marts", MARTS_SELECT, run, vars_key="marts_vars") if per_model else None
    if group is None:
        return build_marts_in_one_step(upstream)
    upstream >> group
    return group
