"""The run context: Settings resolved once, carried as one serialised value, every default in one place."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from helpers.run import REPO

DBT = REPO / "dbt_project"


def _context():
    from ml.core.settings import Settings

    return Settings.load(warehouse="/tmp/cw-context/warehouse", raw_dir="/tmp/cw-context/raw", as_of="2025-12-31",
                         horizon_days=60, retrain=True, campaign_budget=2500.0, control_share=0.2,
                         timestamp_formats="orders=%d/%m/%Y", mlflow_tracking_uri="http://127.0.0.1:5000",
                         n_training_cutoffs=8, duckdb_memory_limit="2GB", pii_salt="the-salt")


def test_the_context_round_trips_through_its_serialised_form(monkeypatch):
    from ml.core.settings import Settings

    settings = _context()
    carried = json.loads(json.dumps(settings.to_dict()))  # what XCom stores
    monkeypatch.setenv("CHURNWATCH_PII_SALT", "the-salt")
    assert Settings.from_dict(carried) == settings
    assert carried["as_of"] == "2025-12-31" and carried["horizon_days"] == 60
    assert Settings.from_dict(carried).campaign_id == "CW-20251231-H60"


def test_the_serialised_context_never_carries_the_secret(monkeypatch):
    from ml.core.settings import Settings

    carried = _context().to_dict()
    assert "pii_salt" not in carried and "the-salt" not in json.dumps(carried)
    monkeypatch.setenv("CHURNWATCH_PII_SALT", "from-the-environment")
    assert Settings.from_dict(carried).pii_salt == "from-the-environment"


def test_reading_the_context_ignores_the_environment(monkeypatch):
    """A task reads the run's values back; a CHURNWATCH_* variable cannot change them mid-run."""
    from ml.core.settings import Settings

    carried = _context().to_dict()
    monkeypatch.setenv("CHURNWATCH_AS_OF", "2024-01-01")
    monkeypatch.setenv("CHURNWATCH_HORIZON_DAYS", "30")
    back = Settings.from_dict(carried)
    assert back.as_of == dt.date(2025, 12, 31) and back.horizon_days == 60
    with pytest.raises(ValueError, match="not Settings fields"):
        Settings.from_dict({**carried, "as_of_date": "2025-12-31"})


def test_dbt_vars_and_env_come_from_the_context():
    from ml.core.dbt import dbt_env, dbt_vars

    settings = _context()
    assert dbt_vars(settings) == {"as_of_date": "2025-12-31", "horizon_days": 60, "cutoff_step_days": 30,
                                  "n_training_cutoffs": 8, "incremental_lookback_days": 2}
    assert dbt_env(settings)["CHURNWATCH_DUCKDB_MEMORY_LIMIT"] == "2GB"
    assert dbt_env(settings)["CHURNWATCH_DB_PATH"] == str(settings.db_path)


# ---- every default in one place ------------------------------------------------------------------

def _profile_default(name: str) -> str:
    match = re.search(r"env_var\('%s',\s*'([^']*)'\)" % name, (DBT / "profiles.yml").read_text())
    assert match, name
    return match.group(1)


def test_defaults_dbt_reads_are_the_settings_defaults():
    from ml.core.settings import Settings

    project = yaml.safe_load((DBT / "dbt_project.yml").read_text())["vars"]
    for name in ("horizon_days", "cutoff_step_days", "n_training_cutoffs", "risk_alert_min_increase"):
        assert getattr(Settings, name) == project[name], name
    assert Settings.duckdb_memory_limit == _profile_default("CHURNWATCH_DUCKDB_MEMORY_LIMIT")
    assert Settings.duckdb_threads == int(_profile_default("CHURNWATCH_DUCKDB_THREADS"))


def test_a_default_changed_in_dbt_files_changes_the_settings(tmp_path):
    """No copy in Python: Settings follow the dbt project's files (a run passes them back to dbt)."""
    project = tmp_path / "dbt_project"
    project.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(DBT / name, project / name)
    text = (project / "dbt_project.yml").read_text()
    text = re.sub(r"(?m)^  n_training_cutoffs: \d+$", "  n_training_cutoffs: 11", text)
    text = re.sub(r"(?m)^  horizon_days: \d+$", "  horizon_days: 45", text)
    text = re.sub(r"(?m)^  incremental_lookback_days: \d+$", "  incremental_lookback_days: 4", text)
    (project / "dbt_project.yml").write_text(text)
    profiles = (project / "profiles.yml").read_text().replace(
        "'CHURNWATCH_DUCKDB_MEMORY_LIMIT', '", "'CHURNWATCH_DUCKDB_MEMORY_LIMIT', '3")
    (project / "profiles.yml").write_text(profiles)
    code = ("import json; from ml.core.settings import Settings; from ml.core.dbt import dbt_vars\n"
            "s = Settings.load(as_of='2025-12-31')\n"
            "print(json.dumps({**dbt_vars(s), 'memory': s.duckdb_memory_limit}))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNWATCH_")}
    env["CHURNWATCH_DBT_PROJECT_DIR"] = str(project)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert (seen["n_training_cutoffs"], seen["horizon_days"], seen["incremental_lookback_days"]) == (11, 45, 4)
    assert seen["memory"].startswith("3")


def test_dbt_models_take_their_defaults_from_the_project_vars():
    """A var declared in dbt_project.yml is never given a second default inline in a model or macro."""
    declared = set(yaml.safe_load((DBT / "dbt_project.yml").read_text())["vars"])
    inline = []
    for path in [*DBT.glob("models/**/*.sql"), *DBT.glob("models/**/*.yml"), *DBT.glob("macros/*.sql")]:
        for name, default in re.findall(r"var\(\s*'(\w+)'\s*,\s*([^)]+)\)", path.read_text()):
            if name in declared and default.strip() != "none":
                inline.append(f"{path.relative_to(DBT)}: var('{name}', {default})")
    assert not inline, inline


def test_the_trigger_form_defaults_are_the_settings_defaults():
    pytest.importorskip("airflow")
    from ml.core.settings import Settings
    from ml.faces.airflow_tasks import params

    form = params()
    for name in ("horizon_days", "campaign_budget", "control_share"):
        assert form[name].value == getattr(Settings, name), name


# ---- resolving the run -----------------------------------------------------------------------------

def _ingest_log(settings, rows: list[tuple]) -> None:
    import duckdb

    settings.warehouse.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.db_path))
    con.execute("create schema raw")
    con.execute("create table raw._ingest_log (as_of_date date, status varchar)")
    con.executemany("insert into raw._ingest_log values (?, ?)", rows)
    con.close()


def test_resolve_run_keeps_a_given_date_else_takes_the_last_good_ingest(tmp_path):
    from ml.core.context import NothingIngested, resolve_run
    from ml.core.errors import InputError
    from ml.core.settings import Settings

    settings = Settings.load(warehouse=tmp_path / "w")
    with pytest.raises(NothingIngested, match="nothing ingested"):
        resolve_run(settings)
    assert issubclass(NothingIngested, InputError)  # the tasks fail it without retries
    _ingest_log(settings, [(dt.date(2025, 10, 1), "staged"), (dt.date(2025, 12, 31), "staged"),
                           (dt.date(2026, 1, 5), "failed")])
    assert resolve_run(settings).as_of == dt.date(2025, 12, 31)
    assert resolve_run(settings.replace(as_of="2025-06-30")).as_of == dt.date(2025, 6, 30)


def test_training_cutoffs_sit_on_the_grid_dbt_uses():
    from ml.core.context import backtest_cutoff, training_cutoffs
    from ml.core.settings import Settings

    settings = Settings(as_of=dt.date(2025, 12, 31), horizon_days=90, n_training_cutoffs=3)
    assert training_cutoffs(settings) == [dt.date(2025, 9, 9), dt.date(2025, 8, 10), dt.date(2025, 7, 11)]
    assert backtest_cutoff(settings) == dt.date(2025, 9, 9)
    assert (dt.date(2025, 9, 9) - dt.date(1970, 1, 1)).days % 30 == 0
