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
from helpers.published import AS_OF, HORIZON, fill as _fill



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
