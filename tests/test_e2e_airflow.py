"""End to end against a live Airflow that the test starts itself (API server, scheduler, DAG
processor, triggerer on a free localhost port, a temporary home and warehouse), the same way
``make up`` starts it (``ml.services.LocalAirflow``):

1. REST: log in for a JWT, trigger ``churn_pipeline`` with non-default params, wait for success,
   and check the published tables carry them;
2. browser: headless Chromium (Debian's, driven by Playwright; no browser download) logs in to
   the UI, opens the trigger form, sets a non-default horizon, submits; the run succeeds.
   Screenshots go to ``test-artifacts/``.

A 2k-customer shop and one hyper-parameter trial keep each run to a couple of minutes.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
END_DATE = dt.date(2025, 12, 31)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
RUN_TIMEOUT = 900
TIMINGS: dict[str, float] = {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _record(name: str, seconds: float) -> None:
    TIMINGS[name] = round(seconds, 1)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "e2e_timings.json").write_text(json.dumps(TIMINGS, indent=2))
    print(f"e2e {name}: {seconds:.1f}s")


@pytest.fixture(scope="module")
def live_airflow(tmp_path_factory):
    from ml.services import LocalAirflow
    from ml.synth import generate

    started = time.monotonic()
    shop = tmp_path_factory.mktemp("e2e_shop")
    generate(shop, customers=2000, seed=5, end_date=END_DATE)
    airflow = LocalAirflow(
        tmp_path_factory.mktemp("e2e_warehouse"), port=_free_port(), password=secrets.token_urlsafe(12),
        raw_dir=shop, extra_env={"CHURNWATCH_TRAIN_SEARCH_TRIALS": "1"},
    )
    airflow.prepare()
    airflow.start()
    try:
        airflow.wait_until_healthy(timeout=300)
        _wait_for_dag(airflow, "churn_pipeline")
        _record("start_airflow", time.monotonic() - started)
        yield airflow
    finally:
        airflow.stop()


def _wait_for_dag(airflow, dag_id: str, timeout: float = 300) -> None:
    import urllib.error

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            airflow.api("GET", f"/dags/{dag_id}")
            return
        except urllib.error.HTTPError:
            time.sleep(3)
    raise TimeoutError(f"{dag_id} was not parsed within {timeout}s; see {airflow.run_dir}/dag-processor.log")


def _wait_for_run(airflow, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    token, token_at = airflow.token(), time.monotonic()
    while time.monotonic() < deadline:
        if time.monotonic() - token_at > 600:
            token, token_at = airflow.token(), time.monotonic()
        state = airflow.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}", token=token)["state"]
        if state in ("success", "failed"):
            return state
        time.sleep(5)
    return "timeout"


def _failure_report(airflow, dag_id: str, run_id: str) -> str:
    tis = airflow.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    lines = [f"{ti['task_id']}: {ti['state']}" for ti in tis if ti["state"] != "success"]
    alerts = airflow.warehouse / "alerts" / "alerts.jsonl"
    if alerts.exists():
        lines += alerts.read_text().splitlines()[-3:]
    return "\n".join(lines)


def _published(warehouse: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(warehouse / "analytics.duckdb"), read_only=True)


def test_rest_trigger_with_params_is_reflected_in_the_published_tables(live_airflow):
    airflow = live_airflow
    started = time.monotonic()
    token = airflow.token()
    airflow.api("PATCH", "/dags/churn_pipeline", {"is_paused": False}, token=token)
    conf = {"horizon_days": 60, "campaign_budget": 2500.0, "control_share": 0.2}
    run = airflow.api("POST", "/dags/churn_pipeline/dagRuns", {"logical_date": None, "conf": conf}, token=token)

    state = _wait_for_run(airflow, "churn_pipeline", run["dag_run_id"])
    _record("rest_trigger_to_success", time.monotonic() - started)
    assert state == "success", _failure_report(airflow, "churn_pipeline", run["dag_run_id"])

    con = _published(airflow.warehouse)  # the catalog keeps every (as-of date, horizon) published
    as_of, rows = con.execute(
        "select max(as_of_date), count(*) from marts.churn_scores where horizon_days = 60").fetchone()
    assert as_of == END_DATE and rows > 500
    assert con.execute("select count(*) from marts.churn_scores where horizon_days = 90").fetchone()[0] == 0
    # the budget and control share reached the retention policy
    campaign = airflow.api(
        "GET", f"/dags/churn_pipeline/dagRuns/{run['dag_run_id']}/taskInstances/decide_retention/xcomEntries/return_value",
        token=token)["value"]
    campaign = campaign if isinstance(campaign, dict) else json.loads(campaign)
    assert campaign["campaign"]["budget"] == 2500.0
    assert campaign["campaign"].get("spend", 0.0) <= 2500.0
    audience, controls = con.execute(
        "select count(*), count(*) filter (where is_control) from marts.retention_audience").fetchone()
    if audience:
        assert 0.1 < controls / audience < 0.3


def test_browser_login_trigger_form_and_successful_run(live_airflow):
    pytest.importorskip("playwright")
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    airflow = live_airflow
    started = time.monotonic()
    ARTIFACTS.mkdir(exist_ok=True)
    horizon = 45
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="chromium-profile-"), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1400, "height": 1100})
        try:
            page = browser.new_page()
            page.goto(f"{airflow.url}/")
            page.locator("input[name=username]").fill(airflow.user)
            page.locator("input[name=password]").fill(airflow.password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(lambda url: "/auth/login" not in url, timeout=60_000)

            page.goto(f"{airflow.url}/dags/churn_pipeline")
            page.get_by_role("button", name="Trigger").first.click()
            field = page.get_by_label("Horizon (days)")
            field.fill(str(horizon))
            field.blur()
            page.screenshot(path=str(ARTIFACTS / "airflow_trigger_form.png"), full_page=True)
            submit = page.get_by_test_id("trigger-dag-submit")
            submit.scroll_into_view_if_needed()
            submit.click()
            run_id = _newest_run_with(airflow, "churn_pipeline", horizon)
            state = _wait_for_run(airflow, "churn_pipeline", run_id)
            page.goto(f"{airflow.url}/dags/churn_pipeline/runs/{run_id}")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(ARTIFACTS / "airflow_run_after_browser_trigger.png"), full_page=True)
        finally:
            browser.close()
    _record("browser_trigger_to_success", time.monotonic() - started)
    assert state == "success", _failure_report(airflow, "churn_pipeline", run_id)
    rows = _published(airflow.warehouse).execute(
        "select count(*) from marts.churn_scores where horizon_days = ?", [horizon]).fetchone()[0]
    assert rows > 500


def _newest_run_with(airflow, dag_id: str, horizon: int, timeout: float = 60) -> str:
    """The run the form created: the newest one whose conf carries the horizon typed in."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = airflow.api("GET", f"/dags/{dag_id}/dagRuns?order_by=-run_after&limit=5")["dag_runs"]
        for run in runs:
            if (run.get("conf") or {}).get("horizon_days") == horizon:
                return run["dag_run_id"]
        time.sleep(2)
    raise AssertionError(f"no {dag_id} run with horizon_days={horizon} was created by the form")
