"""Publishing: an analyst's read-only reader never sees a lock error or a half-written table, history
is kept per as-of date, and a failed publish changes nothing visible.

The pipeline database here is built directly with tables of the published shapes (fast); what is
under test is ml/stages/publish/snapshot.py's snapshot + manifest + atomic catalog swap.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from ml.core.catalog import connect_catalog
from ml.stages.publish import KEEP_MANIFESTS, publish, read_manifest
from ml.core.settings import Settings

AS_OF = dt.date(2025, 12, 31)
HORIZON = 90


def _fill(settings: Settings, rows: int, tag: str, as_of: dt.date = AS_OF) -> None:
    """Replace the run's rows in the pipeline tables the publish reads; every row carries ``tag``."""
    campaign = settings.replace(as_of=as_of).campaign_id
    settings.warehouse.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.db_path))
    try:
        for schema in ("scoring", "marts", "ml"):
            con.execute(f"create schema if not exists {schema}")
        con.execute(f"""
            create table if not exists scoring.churn_scores as
            select lpad(i::varchar, 8, '0') as customer_id, date '{as_of}' as as_of_date, {HORIZON} as horizon_days,
                   0.5 as churn_probability, 'medium' as risk_tier, 10.0 as predicted_value, 5.0 as value_at_risk,
                   'r1' as reason_1, null::varchar as reason_2, null::varchar as reason_3,
                   'churnwatch_churn_90d' as model_name, '1' as model_version, 'tag' as run_id,
                   timestamp '2026-01-01' as scored_at
            from range(0) t(i)""")
        con.execute("delete from scoring.churn_scores where as_of_date = ?", [as_of])
        con.execute(f"""
            insert into scoring.churn_scores
            select lpad(i::varchar, 8, '0'), date '{as_of}', {HORIZON}, (i % 997) / 997.0, 'medium', 10.0 + i % 50,
                   5.0, 'days_since_last_order', null, null, 'churnwatch_churn_90d', '1', '{tag}', timestamp '2026-01-01'
            from range({rows}) t(i)""")
        con.execute(f"""
            create or replace table marts.retention_audience as
            select '{campaign}' as campaign_id, lpad(i::varchar, 8, '0') as customer_id, 'coupon' as action,
                   'COUPON10' as offer_code, 'email' as channel, ['P1', 'P2'] as recommended_products,
                   i % 10 = 0 as is_control, i + 1 as priority_rank, 1.0 as expected_net_value,
                   '{tag}' as reason_summary, date '{as_of}' as as_of_date, {HORIZON} as horizon_days,
                   '1' as model_version, case when i % 10 = 0 then 'control' else 'targeted' end as assignment,
                   1.0 as propensity
            from range({rows // 10}) t(i)""")
        con.execute("""
            create or replace table ml.model_performance as
            select '1' as model_version, date '2025-10-02' as as_of_date, 0.8 as auc""")
        # what the marts step's dbt builds over the stages' own tables (the publish reads the marts)
        con.execute("create or replace view marts.churn_scores as select * from scoring.churn_scores")
        con.execute("create or replace view marts.model_performance as select * from ml.model_performance")
    finally:
        con.close()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.load(warehouse=tmp_path / "w", as_of=AS_OF, horizon_days=HORIZON)


READER = r"""
import duckdb, json, os, sys, time
path, stop, ready, out = sys.argv[1:5]
reads, errors, seen, problems = 0, 0, [], []
while not os.path.exists(stop):
    try:
        con = duckdb.connect(path, read_only=True, config={"file_search_path": os.path.dirname(path)})
        try:
            expected = dict(con.execute("select table_name, expected_rows from marts._tables").fetchall())
            n, tags, tag = con.execute(
                "select count(*), count(distinct run_id), any_value(run_id) from marts.churn_scores").fetchall()[0]
            m, audience_tags, audience_tag = con.execute(
                "select count(*), count(distinct reason_summary), any_value(reason_summary) "
                "from marts.retention_audience").fetchall()[0]
        finally:
            con.close()
        reads += 1
        if n != expected["churn_scores"] or m != expected["retention_audience"] or tags != 1 \
                or audience_tags != 1 or tag != audience_tag:
            problems.append([n, m, tags, tag, audience_tag, expected])
        seen.append([tag, n])
        if reads == 1:
            open(ready, "w").close()
    except Exception as exc:  # any error counts, lock errors included
        errors += 1
        problems.append(repr(exc))
json.dump({"reads": reads, "errors": errors, "seen": seen, "problems": problems[:20]}, open(out, "w"))
"""


def test_a_reader_during_two_publishes_sees_only_complete_snapshots(settings, tmp_path):
    sizes = {"first": 150_000, "second": 220_000, "third": 90_000}
    _fill(settings, sizes["first"], "first")
    publish(settings)

    stop, ready, out = tmp_path / "stop", tmp_path / "ready", tmp_path / "reader.json"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(settings.analytics_path), str(stop), str(ready), str(out)])
    try:
        deadline = time.time() + 60
        while not ready.exists() and time.time() < deadline and reader.poll() is None:
            time.sleep(0.05)
        assert ready.exists(), "the reader never managed a first read"
        for tag in ("second", "third"):
            _fill(settings, sizes[tag], tag)
            publish(settings)
        time.sleep(0.5)  # let the reader see the last catalog too
    finally:
        stop.touch()
        reader.wait(timeout=60)
    result = json.loads(out.read_text())
    print({"reads": result["reads"], "distinct": sorted({tuple(s) for s in result["seen"]})})
    assert result["errors"] == 0, result["problems"]
    assert result["problems"] == []
    assert result["reads"] >= 10
    seen = {tuple(s) for s in result["seen"]}
    assert seen <= {(tag, n) for tag, n in sizes.items()}
    assert ("third", sizes["third"]) in seen


def test_history_is_kept_per_as_of_date_and_a_rerun_replaces_its_partition(settings):
    earlier = AS_OF - dt.timedelta(days=30)
    _fill(settings, 1000, "a", as_of=earlier)
    publish(settings.replace(as_of=earlier))
    _fill(settings, 1200, "b")
    publish(settings)
    _fill(settings, 1300, "c")  # rerun of the latest as-of date
    publish(settings)

    con = connect_catalog(settings.analytics_path)
    counts = dict(con.execute("select as_of_date, count(*) from marts.churn_scores group by 1").fetchall())
    tags = dict(con.execute("select as_of_date, any_value(run_id) from marts.churn_scores group by 1").fetchall())
    assert counts == {earlier: 1000, AS_OF: 1300} and tags == {earlier: "a", AS_OF: "c"}
    partitions = read_manifest(settings)["tables"]["churn_scores"]
    assert sorted(partitions) == [f"as_of_date={earlier}/horizon_days={HORIZON}",
                                  f"as_of_date={AS_OF}/horizon_days={HORIZON}"]
    for path in partitions.values():
        assert (settings.published_dir / path).exists()
    # CRM export of each run's campaign
    assert (settings.crm_export_dir / f"{settings.campaign_id}.csv").exists()
    assert (settings.crm_export_dir / f"{settings.replace(as_of=earlier).campaign_id}.parquet").exists()


def test_old_snapshot_files_are_collected_after_a_few_publishes(settings):
    for i in range(KEEP_MANIFESTS + 2):
        _fill(settings, 500 + i, f"t{i}")
        publish(settings)
    files = list((settings.published_dir / "churn_scores").rglob("part-*.parquet"))
    assert len(files) == KEEP_MANIFESTS
    manifest = read_manifest(settings)
    assert len(manifest["history"]) == KEEP_MANIFESTS
    assert manifest["rows"]["churn_scores"][f"as_of_date={AS_OF}/horizon_days={HORIZON}"] == 500 + KEEP_MANIFESTS + 1


def test_a_failed_publish_changes_nothing_visible(settings, monkeypatch):
    import ml.stages.publish.snapshot

    _fill(settings, 800, "good")
    publish(settings)
    before = settings.analytics_path.read_bytes()
    manifest_before = read_manifest(settings)

    _fill(settings, 900, "bad")

    def broken_export(*args, **kwargs):
        raise RuntimeError("CRM export failed")

    monkeypatch.setattr(ml.stages.publish.snapshot, "export_crm", broken_export)
    with pytest.raises(RuntimeError, match="CRM export failed"):
        publish(settings)
    assert settings.analytics_path.read_bytes() == before
    assert read_manifest(settings) == manifest_before
    con = connect_catalog(settings.analytics_path)
    assert con.execute("select count(*), any_value(run_id) from marts.churn_scores").fetchall() == [(800, "good")]
    assert not [p for p in settings.warehouse.iterdir() if p.name.startswith(".analytics.")]
