"""The local UIs: Airflow (API server + UI, scheduler, DAG processor, triggerer, log server), the
MLflow UI and dbt docs, on 127.0.0.1 only and behind the one login (``admin`` /
``CHURNWATCH_ADMIN_PASSWORD``), started and stopped with pid files.

``make up`` / ``make down`` / ``make docs`` call this module, and the end-to-end tests start their
own instance through the same :class:`LocalAirflow`, so what the tests exercise is what users run.

Everything lives under the warehouse: the Airflow home (SQLite metadata, logs, the generated
secrets) is ``<warehouse>/airflow`` — the same home ``churnwatch run`` uses, so runs made from the
command line show up in the UI — and pid files and service logs are in ``<warehouse>/run``.
"""
from __future__ import annotations

import argparse
import base64
import hmac
import http.server
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ml.faces.orchestrate import DAGS_FOLDER, bytecode_cache_env, ensure_manifest
from ml.core.settings import REPO_ROOT, Settings

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", "log-server")
POOL = "duckdb_writer"
HOST = "127.0.0.1"
MLFLOW_REGISTRY = "/#/models"  # the MLflow UI's page for the registered models, where promotion starts


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


@dataclass
class LocalAirflow:
    """One Airflow on localhost with a SimpleAuthManager login, its state under ``home``."""

    warehouse: Path
    port: int = 8080
    user: str = "admin"
    password: str | None = None
    home: Path | None = None
    raw_dir: Path | None = None  # the trigger form's default raw folder
    worker_log_port: int = 8793  # [logging] worker_log_server_port: task logs while a task runs
    trigger_log_port: int = 8794  # [logging] trigger_log_server_port: deferred tasks' logs
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.warehouse = Path(self.warehouse).resolve()
        self.home = Path(self.home or self.warehouse / "airflow").resolve()
        self.run_dir = self.warehouse / "run"
        self.password = self.password or os.environ.get("CHURNWATCH_ADMIN_PASSWORD") or self._secret("admin_password")

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    # ---- configuration -------------------------------------------------------------------
    def _secret(self, name: str) -> str:
        """A per-home secret generated on first use (never committed: it lives under the warehouse)."""
        path = self.home / ".churnwatch-secrets.json"
        values = json.loads(path.read_text()) if path.exists() else {}
        if name not in values:
            values[name] = secrets.token_urlsafe(24)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(json.dumps(values))
        return values[name]

    def env(self) -> dict[str, str]:
        settings = Settings.load(warehouse=self.warehouse, raw_dir=self.raw_dir)
        env = bytecode_cache_env({k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")})
        env.update(settings.as_env())
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__HOST": HOST,
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__SECRET_KEY": self._secret("api_secret_key"),
            "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt_secret"),
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            # the API server fetches a running task's log from http://<hostname>:<port>; the log
            # server listens on 127.0.0.1 only, so every component names itself by that address
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "ml.faces.services.loopback_hostname",
            "CHURNWATCH_WAREHOUSE": str(self.warehouse),
        })
        env.update(self.extra_env)
        return env

    def _airflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([_bin("airflow"), *args], env=self.env(), cwd=REPO_ROOT, check=check,
                              capture_output=True, text=True)

    def prepare(self) -> None:
        """Metadata DB, the one-slot DuckDB pool, the login, and the dbt manifest for Cosmos."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ensure_manifest()
        passwords = self.home / "passwords.json"
        passwords.touch(mode=0o600)
        passwords.write_text(json.dumps({self.user: self.password}))
        self._airflow("db", "migrate")
        self._airflow("pools", "set", POOL, "1", "DuckDB allows one writer per file: every churnwatch task")

    # ---- processes -----------------------------------------------------------------------
    def _pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def start(self, components=AIRFLOW_COMPONENTS) -> None:
        """Start the components; the scheduler and triggerer without their own log servers, which
        Airflow 3.3 binds to every interface, and ``log-server`` (:func:`serve_logs`) instead."""
        env = self.env()
        for name in components:
            cmd = {
                "api-server": [_bin("airflow"), "api-server", "--host", HOST, "--port", str(self.port)],
                "scheduler": [_bin("airflow"), "scheduler", "--skip-serve-logs"],
                "triggerer": [_bin("airflow"), "triggerer", "--skip-serve-logs"],
                "log-server": [sys.executable, "-m", "ml.faces.services", "serve-logs"],
            }.get(name, [_bin("airflow"), name])
            start_process(self.run_dir, name, cmd, env)

    def stop(self) -> None:
        for name in reversed(AIRFLOW_COMPONENTS):
            stop_process(self.run_dir, name)

    @property
    def mlflow_secret_key(self) -> str:
        """The MLflow server's Flask secret (its login form's CSRF token), kept with this home's."""
        return self._secret("mlflow_secret_key")

    @property
    def ports(self) -> dict[str, int]:
        return {"Airflow": self.port, "Airflow's task log server": self.worker_log_port,
                "Airflow's triggerer log server": self.trigger_log_port}

    def wait_until_healthy(self, timeout: float = 180) -> None:
        """Wait for the API server, the scheduler and the DAG processor to report healthy."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as resp:
                    last = json.load(resp)
                if all((last.get(c) or {}).get("status") == "healthy" for c in ("metadatabase", "scheduler", "dag_processor")):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError) as exc:
                last = str(exc)
            time.sleep(2)
        raise TimeoutError(f"Airflow at {self.url} not healthy after {timeout:.0f}s: {last}; logs in {self.run_dir}")

    def wait_for_dag(self, dag_id: str, timeout: float = 300) -> bool:
        """Wait until the DAG processor has parsed ``dag_id`` (the REST API answers 404 before)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.api("GET", f"/dags/{dag_id}")
                return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(3)
        return False

    # ---- REST ----------------------------------------------------------------------------
    def token(self) -> str:
        body = json.dumps({"username": self.user, "password": self.password}).encode()
        req = urllib.request.Request(f"{self.url}/auth/token", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)["access_token"]

    def api(self, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
        req = urllib.request.Request(
            f"{self.url}/api/v2{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token or self.token()}"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.load(resp)


def start_process(run_dir: Path, name: str, cmd: list[str], env: dict[str, str]) -> int:
    """Start ``cmd`` in its own session, logs to ``<run_dir>/<name>.log``, pid to ``<name>.pid``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    pid_file = run_dir / f"{name}.pid"
    if pid_file.exists() and _alive(int(pid_file.read_text())):
        return int(pid_file.read_text())
    with open(run_dir / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def stop_process(run_dir: Path, name: str, timeout: float = 30) -> bool:
    """Stop what :func:`start_process` started: every process of its session (the component, the
    workers it forked and the task processes they started in process groups of their own) —
    TERM, then KILL after ``timeout``. True if it was running."""
    pid_file = run_dir / f"{name}.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    ran = _alive(pid)
    members = _session_members(pid)
    for member in members:
        _signal(member, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(m) for m in members) and time.monotonic() < deadline:
        time.sleep(0.3)
    for member in _session_members(pid) | {m for m in members if _alive(m)}:
        _signal(member, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return ran


def _session_members(session_id: int) -> set[int]:
    """The live processes whose session is ``session_id`` (from /proc; the leader included)."""
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id and fields[0] != "Z":  # fields after "(comm)": state, ppid, pgrp, session
            members.add(int(stat.parent.name))
    if _alive(session_id):
        members.add(session_id)
    return members


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) != 0


# ---- Airflow's log server on localhost -------------------------------------------------------

def loopback_hostname() -> str:
    """Airflow's ``[core] hostname_callable`` for the local services: every component and task
    names itself 127.0.0.1, the one address the log server listens on, so the UI can fetch a
    running task's log whatever the machine's own name resolves to."""
    return HOST


def serve_logs() -> None:
    """Airflow's task-log server, on 127.0.0.1 only, on ``[logging] worker_log_server_port`` and
    ``trigger_log_server_port``.

    Airflow 3.3 starts this server inside the scheduler and the triggerer bound to every interface
    (host ``""``: ``[::]`` or ``0.0.0.0``) with no setting to change that, so task logs would be
    readable from the network and two instances on one machine clash. The components run with
    ``--skip-serve-logs`` and this one process serves Airflow's own application
    (``airflow.utils.serve_logs.log_server``: the same log folder, the same signed-token check)
    on both ports of localhost.
    """
    import socket

    import uvicorn
    from airflow.configuration import conf

    sockets: list[socket.socket] = []
    for port in dict.fromkeys(conf.getint("logging", key) for key in ("worker_log_server_port", "trigger_log_server_port")):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sockets.append(sock)
    level = conf.get("logging", "uvicorn_logging_level", fallback="info").lower()
    config = uvicorn.Config("airflow.utils.serve_logs.log_server:get_app", factory=True, log_config=None,
                            access_log=False, log_level=level)
    uvicorn.Server(config).run(sockets=sockets)


# ---- MLflow UI and dbt docs ------------------------------------------------------------------

def mlflow_auth_config(settings: Settings, user: str) -> Path:
    """MLflow's basic-auth configuration, written under the warehouse beside the tracking store:
    the users live in ``mlflow/basic_auth.db``; the admin's password is never in the file (the
    server reads it from ``MLFLOW_AUTH_ADMIN_PASSWORD``)."""
    path = settings.mlflow_dir / "basic_auth.ini"
    path.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{settings.mlflow_dir / 'basic_auth.db'}\n"
        f"admin_username = {user}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    return path


def set_mlflow_admin_password(settings: Settings, user: str, password: str) -> None:
    """Keep the MLflow admin's password equal to ``CHURNWATCH_ADMIN_PASSWORD``: MLflow uses the
    configured password only when it creates the admin, so after the secrets file was regenerated
    the old password would stay in force."""
    db = settings.mlflow_dir / "basic_auth.db"
    if not db.exists():
        return  # the server creates the admin with this password on its first start
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(f"sqlite:///{db}")
    if store.has_user(user) and not store.authenticate_user(user, password):
        store.update_user(user, password=password)


def start_mlflow(warehouse: Path, port: int, user: str, password: str, secret_key: str) -> None:
    """``mlflow server --app-name basic-auth`` on 127.0.0.1 over the warehouse's tracking store:
    the UI and the REST API ask for ``user`` / ``password``.

    The pipeline never goes through this server: it opens the SQLite store directly
    (``ml/core/registry.py``), so the login guards people's access without touching training or
    scoring. MLflow's job runner (GenAI evaluation jobs, seven more processes) stays off.
    """
    settings = Settings.load(warehouse=warehouse)
    settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    config = mlflow_auth_config(settings, user)
    set_mlflow_admin_password(settings, user, password)
    env = bytecode_cache_env(dict(os.environ))
    env.update({
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_USERNAME": user,
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secret_key,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    })
    cmd = [_bin("mlflow"), "server", "--app-name", "basic-auth", "--host", HOST, "--port", str(port),
           "--workers", "1", "--backend-store-uri", settings.tracking_uri,
           "--default-artifact-root", settings.artifact_root]
    start_process(settings.warehouse / "run", "mlflow", cmd, env)


def wait_for_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(2)
    return False


def docs_server(site: Path, port: int, user: str, password: str) -> http.server.ThreadingHTTPServer:
    """A static server for the dbt docs site on 127.0.0.1 that asks for the same login as the
    other UIs (HTTP basic auth): the docs show the warehouse's tables, columns and SQL."""
    expected = ("Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()).encode()

    class LoginRequired(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(site), **kwargs)

        def send_head(self):  # every GET and HEAD passes here first
            if hmac.compare_digest(self.headers.get("Authorization", "").encode(), expected):
                return super().send_head()
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="churnwatch dbt docs", charset="UTF-8"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None

    return http.server.ThreadingHTTPServer((HOST, port), LoginRequired)


def serve_dbt_docs(warehouse: Path, port: int, user: str, password: str) -> None:
    """``dbt docs generate`` against the warehouse, then serve the site on localhost behind the
    login (foreground)."""
    from ml.core.dbt import run_dbt

    settings = Settings.load(warehouse=warehouse)
    run_dbt(settings, ["docs", "generate"])
    server = docs_server(settings.warehouse / "dbt" / "target", port, user, password)
    print(f"dbt docs: http://{HOST}:{port}    login: {user} / {password}    (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# ---- command line ----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.faces.services", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down", "docs", "serve-logs"))
    parser.add_argument("--warehouse", type=Path, default=Path(os.environ.get("CHURNWATCH_WAREHOUSE", "warehouse")))
    parser.add_argument("--raw-dir", type=Path, default=os.environ.get("CHURNWATCH_RAW_DIR") or None,
                        help="the trigger form's default raw folder")
    parser.add_argument("--airflow-port", type=int, default=8080)
    parser.add_argument("--mlflow-port", type=int, default=5000)
    parser.add_argument("--docs-port", type=int, default=8081)
    parser.add_argument("--worker-log-port", type=int, default=8793, help="Airflow's task log server")
    parser.add_argument("--trigger-log-port", type=int, default=8794, help="Airflow's triggerer log server")
    args = parser.parse_args(argv)
    if args.action == "serve-logs":  # the `log-server` component that LocalAirflow.start runs
        serve_logs()
        return 0
    raw_dir = args.raw_dir.resolve() if args.raw_dir and args.raw_dir.exists() else None
    airflow = LocalAirflow(args.warehouse, port=args.airflow_port, raw_dir=raw_dir,
                           worker_log_port=args.worker_log_port, trigger_log_port=args.trigger_log_port)

    if args.action == "docs":
        serve_dbt_docs(args.warehouse, args.docs_port, airflow.user, airflow.password)
        return 0
    if args.action == "down":
        airflow.stop()
        stop_process(airflow.run_dir, "mlflow")
        print("churnwatch: Airflow and the MLflow UI are stopped")
        return 0

    running = (airflow.run_dir / "api-server.pid").exists() and _alive(int((airflow.run_dir / "api-server.pid").read_text()))
    for what, port in {**airflow.ports, "MLflow": args.mlflow_port}.items():
        if not running and not port_free(port):
            print(f"churnwatch: port {port} for {what} is in use; pick another, e.g. make up AIRFLOW_PORT=8090 "
                  f"MLFLOW_PORT=5010 WORKER_LOG_PORT=8795 TRIGGER_LOG_PORT=8796", file=sys.stderr)
            return 1
    airflow.prepare()
    airflow.start()
    start_mlflow(args.warehouse, args.mlflow_port, airflow.user, airflow.password, airflow.mlflow_secret_key)
    try:
        airflow.wait_until_healthy()
    except TimeoutError as exc:
        print(f"churnwatch: {exc}", file=sys.stderr)
        return 1
    parsed = airflow.wait_for_dag("churn_pipeline", timeout=180)  # the REST example needs it
    mlflow_up = wait_for_http(f"http://{HOST}:{args.mlflow_port}/health", timeout=180)
    still = "    (still starting: see {})"
    print(f"""
  Airflow UI   {airflow.url}    login: {airflow.user} / {airflow.password}{"" if parsed else still.format(airflow.run_dir / "dag-processor.log")}
  MLflow UI    http://{HOST}:{args.mlflow_port}{MLFLOW_REGISTRY}    login: {airflow.user} / {airflow.password}{"" if mlflow_up else still.format(airflow.run_dir / "mlflow.log")}
  REST         export AIRFLOW_PORT={args.airflow_port} MLFLOW_PORT={args.mlflow_port}    (the README's REST example reads these and CHURNWATCH_ADMIN_PASSWORD)
  log servers  {HOST}:{args.worker_log_port} (tasks), {HOST}:{args.trigger_log_port} (triggerer)
  warehouse    {airflow.warehouse}    (logs: {airflow.run_dir})
  stop with    make down
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
