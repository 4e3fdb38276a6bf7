"""End to end against a live Airflow that the test starts itself (API server, scheduler, DAG
processor, triggerer on a free localhost port, a temporary home and warehouse), the same way
``make up`` starts it (``ml.faces.services.LocalAirflow``):

0. every listening socket of the started processes (Airflow's components and log server, the
   MLflow server) is on 127.0.0.1, the log servers on the ports given;
1. REST: the README's example, executed literally with bash (log in for a JWT, unpause, trigger
   ``churn_pipeline`` with non-default params) gets a run out of ``queued``; it succeeds and the
   published tables carry the params;
2. MLflow's REST API and UI answer 401 without the login and 200 with it, and list the model the
   pipeline registered in its own SQLite store;
3. browser: headless Chromium (Debian's, driven by Playwright; no browser download) logs in to
   the UI, opens the trigger form, sets a non-default horizon, submits; the run succeeds.
   Screenshots go to ``test-artifacts/``.

A 2k-customer shop and one hyper-parameter trial keep each run to a couple of minutes; the MLflow
server starts while Airflow does.
"""
from __future__ import annotations

import datetime as dt
import base64
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
END_DATE = dt.date(2025, 12, 31)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
RUN_TIMEOUT = 900
QUEUED_TIMEOUT = 120  # an unpaused DAG's run leaves `queued` within a few scheduler loops
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


@dataclass
class Live:
    airflow: object  # ml.faces.services.LocalAirflow
    mlflow_url: str


@pytest.fixture(scope="module")
def live_services(tmp_path_factory):
    """Airflow and the MLflow server as ``make up`` starts them, on free ports of localhost."""
    from ml.faces.services import LocalAirflow, start_mlflow, stop_process, wait_for_http
    from ml.synth import generate

    started = time.monotonic()
    shop = tmp_path_factory.mktemp("e2e_shop")
    generate(shop, customers=2000, seed=5, end_date=END_DATE)
    airflow = LocalAirflow(
        tmp_path_factory.mktemp("e2e_warehouse"), port=_free_port(), password=secrets.token_urlsafe(12),
        raw_dir=shop, extra_env={"CHURNWATCH_TRAIN_SEARCH_TRIALS": "1"},
        worker_log_port=_free_port(), trigger_log_port=_free_port(),
    )
    mlflow_port = _free_port()
    airflow.prepare()
    airflow.start()
    start_mlflow(airflow.warehouse, mlflow_port, airflow.user, airflow.password, airflow.mlflow_secret_key)
    try:
        airflow.wait_until_healthy(timeout=300)
        if not airflow.wait_for_dag("churn_pipeline", timeout=300):
            raise TimeoutError(f"churn_pipeline was not parsed; see {airflow.run_dir}/dag-processor.log")
        mlflow_url = f"http://127.0.0.1:{mlflow_port}"
        if not wait_for_http(f"{mlflow_url}/health", timeout=180):
            raise TimeoutError(f"MLflow did not start; see {airflow.run_dir}/mlflow.log")
        _record("start_airflow_and_mlflow", time.monotonic() - started)
        yield Live(airflow, mlflow_url)
    finally:
        stop_process(airflow.run_dir, "mlflow")
        airflow.stop()


@pytest.fixture(scope="module")
def live_airflow(live_services):
    return live_services.airflow


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
    from ml.core.catalog import connect_catalog  # views name files relative to the catalog

    return connect_catalog(warehouse / "analytics.duckdb")


def _listening_sockets(pids) -> list:
    import psutil

    procs = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs += [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    found = []
    for proc in procs:
        try:
            found += [(proc.pid, " ".join(proc.cmdline()[:3]), c.laddr) for c in proc.net_connections(kind="inet")
                      if c.status == psutil.CONN_LISTEN]
        except psutil.NoSuchProcess:
            continue
    return found


def test_every_listening_socket_is_on_localhost(live_services):
    """No component listens beyond 127.0.0.1 (Airflow 3.3's own log servers bind every interface),
    and the log servers listen on the ports given, so two instances do not clash."""
    airflow = live_services.airflow
    pids = [int(path.read_text()) for path in airflow.run_dir.glob("*.pid")]
    sockets = _listening_sockets(pids)
    beyond = [(pid, cmd, f"{addr.ip}:{addr.port}") for pid, cmd, addr in sockets if addr.ip not in ("127.0.0.1", "::1")]
    assert not beyond, f"listening beyond localhost: {beyond}"
    ports = {addr.port for _, _, addr in sockets}
    mlflow_port = int(live_services.mlflow_url.rsplit(":", 1)[1])
    expected = {airflow.port, airflow.worker_log_port, airflow.trigger_log_port, mlflow_port}
    assert expected <= ports, f"not listening: {sorted(expected - ports)}; listening: {sorted(ports)}"


def _readme_rest_example() -> str:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    found = [block for block in blocks if "/dagRuns" in block]
    assert len(found) == 1, "the README should have one bash block with the REST trigger"
    return found[0]


def _json_values(text: str) -> list:
    """The JSON documents curl printed one after another."""
    decoder, values, pos = json.JSONDecoder(), [], 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        value, pos = decoder.raw_decode(text, pos)
        values.append(value)
    return values


def _run_state(airflow, dag_id: str, run_id: str, left: str, timeout: float) -> str:
    deadline, token = time.monotonic() + timeout, airflow.token()
    state = left
    while time.monotonic() < deadline:
        state = airflow.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}", token=token)["state"]
        if state != left:
            return state
        time.sleep(3)
    return state


def test_readme_rest_example_runs_and_its_params_reach_the_published_tables(live_airflow, tmp_path):
    """The README's REST example, run literally by bash on a fresh instance (the DAG still paused,
    as after `make up`), with the port and the secrets file it reads: its run leaves `queued`."""
    if not shutil.which("jq") or not shutil.which("curl"):
        pytest.fail("the README's REST example needs curl and jq")
    airflow = live_airflow
    started = time.monotonic()
    (tmp_path / ".secrets").mkdir()
    (tmp_path / ".secrets" / "churnwatch.env").write_text(f"CHURNWATCH_ADMIN_PASSWORD={airflow.password}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CHURNWATCH_ADMIN_PASSWORD", "AIRFLOW")}
    env["AIRFLOW_PORT"] = str(airflow.port)
    out = subprocess.run(["bash", "-c", _readme_rest_example()], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    runs = [doc for doc in _json_values(out.stdout) if isinstance(doc, dict) and "dag_run_id" in doc]
    assert runs, f"the README's example created no run: {out.stdout[-500:]} {out.stderr[-500:]}"
    run = runs[-1]

    state = _run_state(airflow, "churn_pipeline", run["dag_run_id"], "queued", QUEUED_TIMEOUT)
    _record("readme_rest_trigger_left_queued", time.monotonic() - started)
    assert state != "queued", f"the README's run is still queued after {QUEUED_TIMEOUT}s (a paused DAG?)"
    state = _wait_for_run(airflow, "churn_pipeline", run["dag_run_id"])
    _record("rest_trigger_to_success", time.monotonic() - started)
    assert state == "success", _failure_report(airflow, "churn_pipeline", run["dag_run_id"])
    token = airflow.token()

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


def _mlflow_get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode()} if auth else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_mlflow_rest_and_ui_need_the_login(live_services):
    """MLflow's basic-auth login guards the registry API and the UI; behind it the server reads the
    store the pipeline wrote directly (the REST run above registered the 60-day model)."""
    airflow, url = live_services.airflow, live_services.mlflow_url
    search = f"{url}/api/2.0/mlflow/registered-models/search"
    assert _mlflow_get(search)[0] == 401
    assert _mlflow_get(search, (airflow.user, airflow.password + "x"))[0] == 401
    assert _mlflow_get(f"{url}/")[0] == 401
    status, body = _mlflow_get(search, (airflow.user, airflow.password))
    assert status == 200, body[:300]
    names = {model["name"] for model in json.loads(body).get("registered_models", [])}
    assert "churnwatch_churn_60d" in names, f"registered models seen through the server: {sorted(names)}"
    assert _mlflow_get(f"{url}/", (airflow.user, airflow.password))[0] == 200


def test_mlflow_ui_opens_on_the_registry_behind_the_login(live_services):
    """The URL ``make up`` prints opens the registered models (where the README's promotion steps
    start) once the browser has the login, and nothing without it."""
    pytest.importorskip("playwright")
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    from ml.faces.services import MLFLOW_REGISTRY

    airflow, url = live_services.airflow, live_services.mlflow_url + MLFLOW_REGISTRY
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            assert browser.new_context().request.get(url).status == 401  # Chromium has no login to give
            page = browser.new_context(http_credentials={"username": airflow.user, "password": airflow.password},
                                       viewport={"width": 1400, "height": 900}).new_page()
            assert page.goto(url).status == 200
            page.get_by_text("churnwatch_churn_60d").first.wait_for(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "mlflow_registry_after_login.png"), full_page=True)
        finally:
            browser.close()


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
