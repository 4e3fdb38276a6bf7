"""What a person sees of `churnwatch run`: one line per stage, and a failure in one plain line.

The child process's whole output (Airflow, dbt, GX, tracebacks) goes to a log under the warehouse;
the terminal gets the stages with their seconds and rows, and a failure ends with the first failed
task's message and the log's path. Faults a person must fix are reported at once and never
retried: a raw folder that is missing (before Airflow starts) and a history too short for the
horizon (when training starts, saying what is needed and what was found).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import duckdb
import pytest

from helpers.run import END_DATE, HORIZON, churnwatch

# an exception's class in the output, e.g. "AirflowFailException:" or "RuntimeError"
CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception)\b")
STAGES = ("ingest", "validate_raw", "dbt_features", "validate_features", "train_if_needed", "score",
          "validate_scores", "decide_retention", "dbt_crm_marts", "publish")


def _log_path(output: str) -> Path:
    paths = re.findall(r"full log: (\S+\.log)", output)
    assert paths, output
    return Path(paths[-1])


def test_a_missing_raw_dir_is_refused_before_airflow_starts(tmp_path):
    warehouse = tmp_path / "w"
    no_orders = tmp_path / "raw"
    no_orders.mkdir()
    (no_orders / "customers.csv").write_text("customer_id,country\n1,DE\n")
    for raw, says in ((tmp_path / "nowhere", "no such folder"), (no_orders, "the required source 'orders' is missing")):
        started = time.monotonic()
        proc = churnwatch("run", "--raw-dir", str(raw), "--warehouse", str(warehouse), check=False)
        elapsed = time.monotonic() - started
        assert proc.returncode == 1 and proc.stdout == ""
        assert proc.stderr.strip().splitlines() == [f"churnwatch run: error: --raw-dir {raw}: {says}"
                                                     + (" (expected orders.csv, orders.parquet or a folder orders/)"
                                                        if raw == no_orders else "")]
        assert elapsed < 10, f"{elapsed:.1f} s: Airflow was started"  # a bare CLI start takes ~1 s
        assert not warehouse.exists()  # nothing was set up: no Airflow home, no log


def test_history_too_short_fails_at_once_in_one_plain_line(shop_s, tmp_path):
    """60 days of orders cannot train a 90-day model: said once, with needed vs found, no retry."""
    raw = tmp_path / "raw"
    raw.mkdir()
    duckdb.sql(f"copy (select order_id, customer_id, order_ts, amount from read_parquet('{shop_s}/orders.parquet') "
               f"where order_ts > timestamp '{END_DATE}' - interval 60 day) to '{raw}/orders.csv' (header)")
    started = time.monotonic()
    proc = churnwatch("run", "--raw-dir", str(raw), "--warehouse", str(tmp_path / "w"), "--as-of", END_DATE.isoformat(),
                      "--horizon-days", str(HORIZON), check=False)
    elapsed = time.monotonic() - started
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert len(output.splitlines()) < 30, output
    assert "Traceback" not in output and not CLASS_NAME.search(output), output
    error, log_line = proc.stderr.strip().splitlines()[-2:]
    assert error.startswith(f"churnwatch run: error: history too short for the {HORIZON}-day horizon: "
                            "training needs orders from "), error
    assert re.search(r"the orders start on 2025-\d\d-\d\d, 60 days before it", error), error
    assert "lower --horizon-days" in error
    log = _log_path(log_line).read_text()
    assert log_line == f"full log: {_log_path(log_line)}"
    assert log.count("starting task_id=train_if_needed") == 1, "retried"
    assert "Traceback" in log and "HistoryTooShort" in log  # the whole story stays in the file
    assert elapsed < 90, f"{elapsed:.0f} s"  # one try; before: 124 s with two retries at 20 s and 40 s


def test_a_successful_run_prints_one_line_per_stage(pipeline_s):
    """The session's run (tests/conftest.py: pipeline_s) kept its output under the warehouse."""
    output = (pipeline_s / "logs" / "churnwatch-run.out").read_text()
    lines = output.strip().splitlines()
    assert len(lines) < 30, output
    assert lines[0].startswith("churnwatch run: churn_pipeline, horizon 90 days")
    assert re.match(r"churnwatch run: done in \d+ min \d+ s; analyst catalog: ", lines[-1]), lines[-1]
    stages = {line.split()[0]: line for line in lines[1:-1]}
    assert set(STAGES) <= set(stages), output
    assert re.search(r"\d+\.\d s  [\d,]+ rows", stages["ingest"]), stages["ingest"]
    assert re.search(r"\d+/\d+ dbt models and tests", stages["dbt_features"]), stages["dbt_features"]
    assert re.search(r"[\d,]+ customers", stages["score"]), stages["score"]
    log = _log_path(lines[0]).read_text()
    assert "[DAG TEST] end task task_id=publish" in log  # the detail is in the file
    assert "Skipping registering function" not in log  # GX's import chatter is silenced at its logger


def test_a_terminal_shows_the_running_dbt_stage_as_a_bar(tmp_path):
    """The view of a run on a terminal: finished stages as lines, the running dbt stage as a bar."""
    import io
    import json

    from ml.faces.orchestrate import ProgressView

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    log, progress, out = tmp_path / "run.log", tmp_path / "run.progress.jsonl", Terminal()
    log.touch()
    progress.touch()
    view = ProgressView(log, progress, out, started=100.0)

    def event(**fields):
        with open(progress, "a") as fh:
            fh.write(json.dumps(fields) + "\n")

    event(event="started", task_id="dbt_features", at=100.0)
    view.follow()
    with open(log, "a") as fh:  # dbt's lines as the child writes them
        for i in range(1, 31):
            fh.write(f"07:34:54  {i} of 69 START sql view model m{i}\n07:34:55  {i} of 69 OK created sql view model m{i}\n")
    view.follow()
    assert "30/69 dbt models and tests" in out.getvalue()
    with open(log, "a") as fh:
        fh.writelines(f"07:34:56  {i} of 69 PASS not_null_m{i}\n" for i in range(31, 70))
    event(event="finished", task_id="dbt_features", note="", at=107.5)
    view.follow()
    view.close()
    finished = [line for line in out.getvalue().replace("\r", "\n").splitlines() if line.startswith("  dbt_features  ")]
    assert finished == ["  dbt_features              7.5 s  69/69 dbt models and tests"], out.getvalue()
