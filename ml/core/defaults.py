"""The defaults Python shares with dbt, read from the one file that holds each of them.

dbt can read nothing but its own files, so a value dbt needs when it runs on its own (``dbt build``
from ``dbt_project/``) lives there, and Python reads it from there:

- ``dbt_project/dbt_project.yml`` ``vars:`` — the run's dates and cutoffs (horizon, cutoff spacing,
  number of training cutoffs, the cutoff grid's anchor, the incremental lookback) and the marts'
  knobs (risk-alert threshold, recommendations per customer);
- ``dbt_project/profiles.yml`` — DuckDB's memory limit and threads: the default of each
  ``env_var(...)``, the variable ``ml.core.dbt`` sets from the run's Settings.

``Settings`` (ml/core/settings.py) takes its field defaults from here, so no number is written
twice; tests/unit/test_run_context.py proves it by changing the files.
"""
from __future__ import annotations

import datetime as dt
import os
from functools import lru_cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# the dbt project the run uses (Airflow and Settings take the same variable)
DBT_PROJECT_DIR = Path(os.environ.get("CHURNWATCH_DBT_PROJECT_DIR") or REPO_ROOT / "dbt_project")


@lru_cache(maxsize=None)
def project_vars(project_dir: Path = DBT_PROJECT_DIR) -> dict:
    """The ``vars:`` of dbt_project.yml: every dbt var's default."""
    import yaml

    return dict(yaml.safe_load((project_dir / "dbt_project.yml").read_text(encoding="utf-8")).get("vars") or {})


@lru_cache(maxsize=None)
def profile_defaults(project_dir: Path = DBT_PROJECT_DIR) -> dict:
    """The dev target of profiles.yml as dbt renders it when no ``CHURNWATCH_*`` variable is set."""
    import jinja2
    import yaml

    text = (project_dir / "profiles.yml").read_text(encoding="utf-8")
    rendered = jinja2.Environment().from_string(text).render(env_var=lambda name, default=None: default)
    profile = yaml.safe_load(rendered)["churnwatch"]
    return profile["outputs"][profile["target"]]


def var(name: str):
    """One dbt var's default (KeyError when dbt_project.yml does not declare it)."""
    return project_vars()[name]


def cutoff_grid_anchor() -> dt.date | None:
    """The day the training cutoffs' grid starts from (None: cutoffs at exact dates)."""
    anchor = var("cutoff_grid_anchor")
    return None if anchor in (None, "", "None", "null") else dt.date.fromisoformat(str(anchor)[:10])


def duckdb_memory_limit() -> str:
    return str(profile_defaults()["settings"]["memory_limit"])


def duckdb_threads() -> int:
    return int(profile_defaults()["threads"])
