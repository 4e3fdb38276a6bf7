"""Two horizons on one warehouse, and an analyst catalog that survives being moved.

A shop runs a 60-day model beside the 90-day one on the same warehouse: both score the same
customers at the same as-of date, both models count their versions from 1, and the shop's own
campaigns are measured once per horizon. The summary and every query of the README must name
one horizon, or every customer counts twice (issue 17, item 2). The catalog's views must name
their files relative to the catalog, so a copied or moved warehouse still answers, read-only,
from any working directory, with what the pinned DuckDB supports (issue 17, item 8).

One extra pipeline run: the session's 90-day warehouse (``pipeline_s``) is copied and a 60-day
``churnwatch run`` goes on the copy. The copy leaves out ``airflow/`` and ``mlflow/``: their
databases hold absolute paths into ``pipeline_s`` (Airflow's metadata database, MLflow's artifact
location), through which the run would write into the shared fixture; the 60-day horizon has no
model yet, so the run trains its own either way. The copy is then moved to another folder.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from helpers.run import END_DATE, HORIZON, QUICK_TRAINING, REPO, churnwatch


SECOND = 60  # the second horizon, beside the shared HORIZON (90)


def _readme_section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("## Query the results")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def readme_sql_text() -> str:
    """The README's SQL examples, as an analyst copies them."""
    blocks = re.findall(r"```sql\n(.*?)```", _readme_section(), flags=re.S)
    assert blocks, "no SQL example in the README's 'Query the results' section"
    return "\n".join(blocks)


def readme_sql() -> list[str]:
    """The statements of the README's SQL examples, in order (their leading comments kept)."""
    return [s.query.strip() for s in duckdb.connect().extract_statements(readme_sql_text())]


def readme_shell() -> list[str]:
    """The README's shell examples for the catalog, one command per entry (continuation lines joined)."""
    blocks = re.findall(r"```bash\n(.*?)```", _readme_section(), flags=re.S)
    assert blocks, "no shell example in the README's 'Query the results' section"
    commands, current = [], ""
    for line in blocks[0].splitlines():
        current += ("\n" if current else "") + line
        if current.count('"') % 2 == 0:  # a quoted Python program spans lines
            commands.append(current)
            current = ""
    return [c for c in commands if c.strip()]


def _run_readme_queries(con, horizon: int | None = None) -> dict[str, list[tuple]]:
    """Each README statement on ``con``, keyed by its leading comment; ``horizon`` replaces the
    README's default (the latest run's), as its first comment tells an analyst to."""
    results = {}
    for statement in readme_sql():
        key = statement.splitlines()[0]
        if horizon is not None and statement.startswith("-- the horizon every query"):
            statement = f"set variable horizon = {horizon}"
        results[key] = con.execute(statement).fetchall()
    return results


def _counts(con, table: str) -> dict[tuple, int]:
    return dict(((h, d), n) for h, d, n in con.execute(
        f"select horizon_days, as_of_date, count(*) from marts.{table} group by all").fetchall())


@pytest.fixture(scope="module")
def two_horizons(pipeline_s, shop_s, tmp_path_factory) -> Path:
    """``pipeline_s`` copied, a 60-day run on the copy, the copy moved elsewhere; its new path."""
    root = tmp_path_factory.mktemp("two_horizons")
    built = root / "built" / "warehouse"
    shutil.copytree(pipeline_s, built, ignore=lambda d, names: [n for n in names if Path(d) == pipeline_s
                                                               and n in ("airflow", "mlflow")])
    started = time.perf_counter()
    churnwatch("run", "--raw-dir", str(shop_s), "--warehouse", str(built), "--as-of", END_DATE.isoformat(),
               "--horizon-days", str(SECOND), env=QUICK_TRAINING)
    print(f"the {SECOND}-day run beside the {HORIZON}-day one: {time.perf_counter() - started:.0f} s")
    moved = root / "moved" / "warehouse"
    moved.parent.mkdir()
    os.rename(built, moved)
    shutil.rmtree(root / "built")
    return moved


@pytest.fixture(scope="module")
def one_horizon(pipeline_s):
    """The 90-day warehouse's own figures, read where it was built."""
    from ml.core.catalog import connect_catalog

    con = connect_catalog(pipeline_s / "analytics.duckdb")
    try:
        yield {"queries": _run_readme_queries(con),
               "scores": _counts(con, "churn_scores"),
               "campaign_results": con.execute("select * exclude (horizon_days) from marts.campaign_results "
                                               "order by all").fetchall()}
    finally:
        con.close()


def test_summary_names_one_horizon_the_latest_runs_by_default(two_horizons, one_horizon):
    customers = one_horizon["scores"][(HORIZON, END_DATE)]
    latest = churnwatch("summary", "--warehouse", str(two_horizons)).stdout
    assert f"horizon {SECOND} days" in latest and f"churnwatch_churn_{SECOND}d" in latest
    assert re.search(rf"customers scored \({SECOND} d\):\s+{customers:,}\b", latest), latest
    chosen = churnwatch("summary", "--warehouse", str(two_horizons), "--horizon-days", str(HORIZON)).stdout
    assert f"horizon {HORIZON} days" in chosen and f"churnwatch_churn_{HORIZON}d" in chosen
    assert re.search(rf"customers scored \({HORIZON} d\):\s+{customers:,}\b", chosen), chosen
    # each horizon's model line shows that model's own backtest metrics
    from ml.core.catalog import connect_catalog

    con = connect_catalog(two_horizons / "analytics.duckdb")
    try:
        for text, horizon in ((latest, SECOND), (chosen, HORIZON)):
            auc, ece = con.execute("select auc, ece from marts.model_performance where horizon_days = ?",
                                   [horizon]).fetchall()[0]
            assert f"test AUC {auc:.3f}" in text and f"ECE {ece:.3f}" in text, (horizon, text)
    finally:
        con.close()
    missing = churnwatch("summary", "--warehouse", str(two_horizons), "--horizon-days", "30", check=False)
    assert missing.returncode == 1
    assert f"no scores published for horizon 30 days (published horizons: {SECOND} days, {HORIZON} days)" \
        in missing.stderr


def test_published_views_keep_horizons_apart(two_horizons, one_horizon):
    from ml.core.catalog import connect_catalog

    con = connect_catalog(two_horizons / "analytics.duckdb")
    try:
        customers = one_horizon["scores"][(HORIZON, END_DATE)]
        for table in ("churn_scores", "customer_segments"):
            assert _counts(con, table) == {(SECOND, END_DATE): customers, (HORIZON, END_DATE): customers}, table
        # one model per horizon, each version once; campaigns named and kept per horizon
        assert con.execute("select count(*) = count(distinct (model_name, model_version)), "
                           "count(distinct horizon_days) from marts.model_performance").fetchall() == [(True, 2)]
        assert con.execute("select count(*) from marts.model_performance where model_name <> "
                           "'churnwatch_churn_' || horizon_days || 'd'").fetchall() == [(0,)]
        assert con.execute("select count(*) from marts.retention_audience "
                           "where not ends_with(campaign_id, '-H' || horizon_days)").fetchall() == [(0,)]
        for table, key in (("campaign_results", 'campaign_id, offer_code, "group"'),
                           ("risk_alerts", "customer_id")):
            assert con.execute(f"select count(*) = count(distinct ({key}, as_of_date, horizon_days)) "
                               f"from marts.{table}").fetchall() == [(True,)], table
        # the 90-day campaign measurement is what it was before the 60-day run: not doubled, not mixed
        assert con.execute("select * exclude (horizon_days) from marts.campaign_results where horizon_days = ? "
                           "order by all", [HORIZON]).fetchall() == one_horizon["campaign_results"]
        assert con.execute("select published_at is not null, as_of_date, horizon_days from marts._catalog"
                           ).fetchall() == [(True, END_DATE, SECOND)]
    finally:
        con.close()


def test_each_readme_query_names_its_horizon(two_horizons, one_horizon):
    """Every README statement runs on the two-horizon catalog; with the 90-day horizon chosen,
    each gives exactly what it gave on the 90-day warehouse alone, and by default it answers for
    the latest run's horizon (60 days), never for both."""
    from ml.core.catalog import connect_catalog

    con = connect_catalog(two_horizons / "analytics.duckdb")
    try:
        chosen = _run_readme_queries(con, horizon=HORIZON)
        latest = _run_readme_queries(con)
    finally:
        con.close()
    volatile = ("-- which snapshot", "select * from marts._tables")  # describe the catalog itself
    for key, rows in one_horizon["queries"].items():
        if not key.startswith(volatile):
            assert chosen[key] == rows, key
    for key, rows in latest.items():
        if key.startswith("-- the riskiest") or key.startswith("-- trend"):
            assert rows and {r[1] for r in rows} == {SECOND}, key
    trend = latest[next(k for k in latest if k.startswith("-- trend"))]
    assert [(r[0], r[2]) for r in trend] == [(END_DATE, one_horizon["scores"][(HORIZON, END_DATE)])]
    campaign = latest[next(k for k in latest if k.startswith("-- the horizon's latest campaign"))]
    assert campaign and {r[0] for r in campaign} == {f"CW-{END_DATE:%Y%m%d}-H{SECOND}"}


def test_readme_examples_work_as_written_on_a_moved_warehouse(two_horizons, tmp_path):
    """The README's shell lines run as written (``.venv/bin`` of this checkout), from the folder
    above the moved warehouse, and its whole SQL example runs through ``churnwatch sql`` from an
    unrelated folder: the views resolve relative to the catalog, read-only."""
    assert not [line for line in readme_shell() if line.startswith("duckdb ")], "no DuckDB CLI is installed"
    analyst = two_horizons.parent
    (analyst / "my_queries.sql").write_text(readme_sql_text())
    for command in readme_shell():
        command = command.replace(".venv/bin/", f"{REPO}/.venv/bin/")
        proc = subprocess.run(["bash", "-c", command], cwd=analyst, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (command, proc.stderr[-2000:])
        assert proc.stdout.strip(), command
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-m", "ml.faces.cli", "sql", "--warehouse", str(two_horizons)],
                          input=readme_sql_text(), cwd=elsewhere,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"CW-{END_DATE:%Y%m%d}-H{SECOND}" in proc.stdout
    # plain DuckDB from another folder: the views hold no absolute path, file_search_path finds them
    con = duckdb.connect(str(two_horizons / "analytics.duckdb"), read_only=True,
                         config={"file_search_path": str(two_horizons)})
    try:
        views = con.execute("select sql from duckdb_views() where schema_name = 'marts'").fetchall()
        assert views and not [v for (v,) in views if str(two_horizons.parents[1]) in v or "'/" in v]
        assert con.execute("select count(*) from marts.churn_scores").fetchall()[0][0] > 0
    finally:
        con.close()


def test_a_moved_warehouse_answers_read_only_from_any_folder(tmp_path, monkeypatch):
    """A small publish (no pipeline run), the warehouse renamed into another folder, its catalog
    queried from a third one: through ``connect_catalog`` and through ``churnwatch sql``."""
    from helpers.published import fill as _fill

    from ml.core.catalog import connect_catalog
    from ml.stages.publish import publish
    from ml.core.settings import Settings

    settings = Settings.load(warehouse=tmp_path / "built" / "warehouse", as_of=END_DATE, horizon_days=HORIZON)
    _fill(settings, 1000, "moved")
    publish(settings)
    moved = tmp_path / "moved" / "renamed"
    moved.parent.mkdir()
    os.rename(settings.warehouse, moved)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    con = connect_catalog(moved / "analytics.duckdb")
    try:
        assert con.execute("select count(*), any_value(run_id) from marts.churn_scores").fetchall() == [(1000, "moved")]
        expected = dict(con.execute("select table_name, expected_rows from marts._tables").fetchall())
        for table, rows in expected.items():
            assert con.execute(f"select count(*) from marts.{table}").fetchall()[0][0] == rows, table
    finally:
        con.close()
    proc = subprocess.run([sys.executable, "-m", "ml.faces.cli", "sql", "--warehouse", str(moved),
                           "select count(*) as customers from marts.churn_scores"],
                          cwd=elsewhere, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1000" in proc.stdout
