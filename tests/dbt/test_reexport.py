"""Reruns on changed exports: a warehouse that already holds a run ends up as a fresh one would.

Shops send full re-exports every day that correct, add late, delete and quarantine rows dated
in the past. The feature layer is incremental, so each rerun must find the past days that
changed (fingerprints at ingest, ``ml.core.fingerprints``) and rebuild what depends on them
(``ml.stages.features.rebuild``); a change of the feature SQL must rebuild too. The proof: after a sequence
of re-exports the feature marts hold exactly the rows of a fresh warehouse given the last
export (EXCEPT ALL both ways, no tolerance).
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from ml.stages.ingest import ingest
from ml.core.settings import Settings
from ml.stages.features import build_features


END = dt.date(2025, 6, 30)
HORIZON = 90
MARTS = ("customer_features", "training_examples")


def _settings(warehouse: Path, raw_dir: Path, as_of: dt.date, project: Path | None = None) -> Settings:
    extra = {"dbt_project_dir": project} if project else {}
    return Settings.load(warehouse=warehouse, raw_dir=raw_dir, as_of=as_of, horizon_days=HORIZON,
                         duckdb_threads=2, duckdb_memory_limit="2GB", **extra)


def _run(warehouse: Path, raw_dir: Path, as_of: dt.date, project: Path | None = None) -> dict:
    """One daily run's feature part: ingest the export, build the features (dbt tests included)."""
    settings = _settings(warehouse, raw_dir, as_of, project)
    ingest(settings, run_id=f"{raw_dir.name}-{as_of}")
    return build_features(settings)


def _reexport(base: Path, out: Path, edits: dict[str, str], as_csv: set[str] = frozenset()) -> Path:
    """A copy of the export in ``base`` with each edited source replaced by ``edits[source]``,
    a query over ``src`` (the source's rows); sources in ``as_csv`` are written as CSV text."""
    out.mkdir()
    for path in base.iterdir():
        source = path.name.split(".")[0]
        if path.is_file() and source not in edits:
            shutil.copy(path, out / path.name)
    con = duckdb.connect()
    try:
        for source, query in edits.items():
            con.execute(f"create or replace temp view src as select * from read_parquet('{base / source}.parquet')")
            if source in as_csv:
                con.execute(f"copy ({query}) to '{out / source}.csv' (header, delimiter ',')")
            else:
                con.execute(f"copy ({query}) to '{out / source}.parquet' (format parquet)")
    finally:
        con.close()
    return out


def _differences(left: Path, right: Path) -> dict[str, tuple[int, int]]:
    """Rows of each feature mart only in ``left``, only in ``right`` (EXCEPT ALL both ways)."""
    con = duckdb.connect()
    try:
        con.execute(f"attach '{left / 'churnwatch.duckdb'}' as l (read_only)")
        con.execute(f"attach '{right / 'churnwatch.duckdb'}' as r (read_only)")
        out = {}
        for mart in MARTS:
            only = [con.execute(f"select count(*) from (select * from {a}.marts.{mart} "
                                f"except all select * from {b}.marts.{mart})").fetchone()[0]
                    for a, b in (("l", "r"), ("r", "l"))]
            assert con.execute(f"select count(*) from r.marts.{mart}").fetchone()[0] > 0
            out[mart] = tuple(only)
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    """A small generated shop (2,000 customers, 400 days) with every source."""
    from ml.synth import generate

    out = tmp_path_factory.mktemp("reexport") / "export-0"
    generate(out, customers=2000, seed=5, end_date=END, history_days=400)
    return out


def _days_before_end(days: int) -> str:
    return f"timestamp '{END - dt.timedelta(days=days)}'"


@pytest.fixture(scope="module")
def exports(shop: Path) -> list[tuple[Path, dt.date]]:
    """The first export and two re-exports of it, each with the as-of date it is run at.

    The first re-export changes only the last 100 days, so older cutoffs and daily rows are
    kept and only the newer ones rebuilt; the second changes order days all through history
    (the order tables and every cutoff are rebuilt whole) but events only recently.
    """
    root = shop.parent
    # 1: amounts corrected on orders 100 to 60 days old; orders and events added late, dated back
    first = _reexport(shop, root / "export-1", {
        "orders": f"""select * replace (case when order_ts >= {_days_before_end(100)}
                                                 and order_ts < {_days_before_end(60)} and hash(order_id) % 7 = 0
                                            then round(amount * 1.25, 2) else amount end as amount)
                      from src
                      union all
                      select * replace ('LATE' || order_id as order_id, order_ts - interval 20 day as order_ts)
                      from src where hash(order_id) % 13 = 0 and order_ts >= {_days_before_end(60)}""",
        "events": f"""select * from src union all
                      select * replace (event_ts - interval 20 day as event_ts, 'LATE' || session_id as session_id)
                      from src where hash(session_id) % 17 = 0 and event_ts >= {_days_before_end(60)}""",
    })
    # 2, a day later: the shop deletes orders and events of the last 80 days, 2% of the order
    # timestamps turn unparseable (quarantined, under max_bad_row_share: every day changes, the
    # order tables are rebuilt whole), customers move region
    recent = f"order_ts >= {_days_before_end(80)}"
    second = _reexport(first, root / "export-2", {
        "orders": f"""select * exclude (order_ts),
                             case when hash(order_id) % 50 = 0 then 'not a date'
                                  else strftime(order_ts, '%Y-%m-%d %H:%M:%S') end as order_ts
                      from src where not ({recent} and hash(order_id) % 31 = 0)""",
        "events": f"""select * from src
                      where not (event_ts >= {_days_before_end(90)} and hash(session_id) % 13 = 0)""",
        "customers": "select * replace (case when hash(customer_id) % 11 = 0 then 'elsewhere' "
                     "else region end as region) from src",
    }, as_csv={"orders"})
    return [(shop, END - dt.timedelta(days=1)), (first, END - dt.timedelta(days=1)), (second, END)]


@pytest.fixture(scope="module")
def fresh(exports, tmp_path_factory) -> Path:
    """A fresh warehouse given only the last export."""
    warehouse = tmp_path_factory.mktemp("fresh")
    raw_dir, as_of = exports[-1]
    _run(warehouse, raw_dir, as_of)
    return warehouse


def test_reruns_on_reexports_equal_a_fresh_build(exports, fresh, tmp_path, caplog):
    warehouse = tmp_path / "rerun"
    results = []
    with caplog.at_level(logging.WARNING, logger="ml.stages.features.rebuild"):
        for raw_dir, as_of in exports:
            results.append(_run(warehouse, raw_dir, as_of))
    assert _differences(warehouse, fresh) == {mart: (0, 0) for mart in MARTS}
    first, *reruns = results
    assert first["rebuilt"] is None and not any(r["full_refresh"] for r in results)
    for result in reruns:  # one line each, naming what changed
        assert result["rebuilt"] and result["rebuilt"].startswith("features: rebuilding")
        assert "orders changed on" in result["rebuilt"] and "events changed on" in result["rebuilt"]
    # only the cutoffs on or after the earliest changed day: not all of them
    built = len(first["training_cutoffs"]) + 1
    count, since = re.match(r"features: rebuilding (\d+) cutoffs? from (\S+) on", reruns[0]["rebuilt"]).groups()
    assert 0 < int(count) < built and dt.date.fromisoformat(since) >= END - dt.timedelta(days=100)
    assert "customers changed" in reruns[1]["rebuilt"]
    assert [r.message for r in caplog.records if r.name == "ml.stages.features.rebuild"] == [r["rebuilt"] for r in reruns]


def test_an_unchanged_rerun_rebuilds_nothing(fresh, exports, tmp_path):
    warehouse = tmp_path / "again"
    shutil.copytree(fresh, warehouse)
    raw_dir, as_of = exports[-1]
    result = _run(warehouse, raw_dir, as_of)
    assert result["rebuilt"] is None and not result["full_refresh"]
    assert _differences(warehouse, fresh) == {mart: (0, 0) for mart in MARTS}


def test_a_change_of_the_feature_sql_rebuilds_every_cutoff(fresh, exports, tmp_path):
    warehouse = tmp_path / "edited"
    shutil.copytree(fresh, warehouse)
    project = tmp_path / "dbt_project"
    shutil.copytree(Settings.load().dbt_project_dir, project,
                    ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    model = project / "models" / "marts" / "features" / "customer_features.sql"
    text = model.read_text()
    assert text.count("        customers.region,\n") == 1
    model.write_text(text.replace("        customers.region,\n", "        upper(customers.region) as region,\n"))
    raw_dir, as_of = exports[-1]
    result = _run(warehouse, raw_dir, as_of, project)
    assert result["full_refresh"] and "the feature SQL changed" in result["rebuilt"]
    assert "models/marts/features/customer_features.sql" in result["rebuilt"]
    con = duckdb.connect(str(warehouse / "churnwatch.duckdb"), read_only=True)
    try:
        lower = con.execute("select count(*) from marts.customer_features where region <> upper(region)").fetchone()[0]
        cutoffs = con.execute("select count(distinct as_of_date) from marts.customer_features").fetchone()[0]
    finally:
        con.close()
    assert lower == 0 and cutoffs > 1


def test_a_build_that_failed_on_a_reexport_is_redone_after_a_revert(exports, tmp_path, monkeypatch):
    """The shop sends a corrected export, the build on it fails after dbt rewrote tables, the
    shop then sends the old export again: the days the failed build touched are rebuilt."""
    from ml.stages.features import rebuild

    (original, as_of), (corrected, _) = exports[0], exports[1]
    warehouse, reference = tmp_path / "w", tmp_path / "reference"
    _run(warehouse, original, as_of)
    shutil.copytree(warehouse, reference)  # a fresh warehouse given the original export

    def fail(settings):
        raise RuntimeError("simulated: the build stopped before it recorded its inputs")

    monkeypatch.setattr(rebuild, "record", fail)
    with pytest.raises(RuntimeError, match="simulated"):
        _run(warehouse, corrected, as_of)
    monkeypatch.undo()
    result = _run(warehouse, original, as_of)
    assert result["rebuilt"] and "an earlier build did not finish" in result["rebuilt"]
    assert _differences(warehouse, reference) == {mart: (0, 0) for mart in MARTS}
