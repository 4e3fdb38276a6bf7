"""The local UIs: Airflow (API server + UI, scheduler, DAG processor, triggerer), the MLflow UI and
dbt docs, on 127.0.0.1 only, started and stopped with pid files.

``make up`` / ``make down`` / ``make docs`` call this module, and the end-to-end tests start their
own instance through the same :class:`LocalAirflow`, so what the tests exercise is what users run.

Everything lives under the warehouse: the Airflow home (SQLite metadata, logs, the generated
secrets) is ``<warehouse>/airflow`` — the same home ``churnwatch run`` uses, so runs made from the
command line show up in the UI — and pid files and service logs are in ``<warehouse>/run``.
"""
from __future__ import annotations

import argparse
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

from ml.orchestrate import DAGS_FOLDER, bytecode_cache_env, ensure_manifest
from ml.settings import REPO_ROOT, Settings

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
POOL = "duckdb_writer"
HOST = "127.0.0.1"


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
        env = self.env()
        for name in components:
            args = ["api-server", "--host", HOST, "--port", str(self.port)] if name == "api-server" else [name]
            start_process(self.run_dir, name, [_bin("airflow"), *args], env)

    def stop(self) -> None:
        for name in reversed(AIRFLOW_COMPONENTS):
            stop_process(self.run_dir, name)

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


# ---- MLflow UI and dbt docs ------------------------------------------------------------------

def start_mlflow(warehouse: Path, port: int) -> None:
    settings = Settings.load(warehouse=warehouse)
    settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    cmd = [_bin("mlflow"), "ui", "--host", HOST, "--port", str(port), "--workers", "1",
           "--backend-store-uri", settings.tracking_uri, "--default-artifact-root", settings.artifact_root]
    start_process(settings.warehouse / "run", "mlflow", cmd, bytecode_cache_env(dict(os.environ)))


def wait_for_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(2)
    return False


def serve_dbt_docs(warehouse: Path, port: int) -> None:
    """``dbt docs generate`` against the warehouse, then serve the site on localhost (foreground)."""
    from ml.transform import run_dbt

    settings = Settings.load(warehouse=warehouse)
    run_dbt(settings, ["docs", "generate"])
    site = settings.warehouse / "dbt" / "target"
    print(f"dbt docs: http://{HOST}:{port}  (Ctrl-C to stop)", flush=True)
    subprocess.run([sys.executable, "-m", "http.server", str(port), "--bind", HOST, "--directory", str(site)])


# ---- command line ----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.services", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down", "docs"))
    parser.add_argument("--warehouse", type=Path, default=Path(os.environ.get("CHURNWATCH_WAREHOUSE", "warehouse")))
    parser.add_argument("--raw-dir", type=Path, default=os.environ.get("CHURNWATCH_RAW_DIR") or None,
                        help="the trigger form's default raw folder")
    parser.add_argument("--airflow-port", type=int, default=8080)
    parser.add_argument("--mlflow-port", type=int, default=5000)
    parser.add_argument("--docs-port", type=int, default=8081)
    args = parser.parse_args(argv)
    raw_dir = args.raw_dir.resolve() if args.raw_dir and args.raw_dir.exists() else None
    airflow = LocalAirflow(args.warehouse, port=args.airflow_port, raw_dir=raw_dir)

    if args.action == "docs":
        serve_dbt_docs(args.warehouse, args.docs_port)
        return 0
    if args.action == "down":
        airflow.stop()
        stop_process(airflow.run_dir, "mlflow")
        print("churnwatch: Airflow and the MLflow UI are stopped")
        return 0

    running = (airflow.run_dir / "api-server.pid").exists() and _alive(int((airflow.run_dir / "api-server.pid").read_text()))
    for port, what in ((args.airflow_port, "Airflow"), (args.mlflow_port, "MLflow")):
        if not running and not port_free(port):
            print(f"churnwatch: port {port} for {what} is in use; pick another, e.g. "
                  f"make up AIRFLOW_PORT=8090 MLFLOW_PORT=5010", file=sys.stderr)
            return 1
    airflow.prepare()
    airflow.start()
    start_mlflow(args.warehouse, args.mlflow_port)
    try:
        airflow.wait_until_healthy()
    except TimeoutError as exc:
        print(f"churnwatch: {exc}", file=sys.stderr)
        return 1
    mlflow_up = wait_for_http(f"http://{HOST}:{args.mlflow_port}/health", timeout=180)
    print(f"""
  Airflow UI   http://{HOST}:{args.airflow_port}    login: {airflow.user} / {airflow.password}
  MLflow UI    http://{HOST}:{args.mlflow_port}{"" if mlflow_up else "    (still starting: see " + str(airflow.run_dir / "mlflow.log") + ")"}
  warehouse    {airflow.warehouse}    (logs: {airflow.run_dir})
  stop with    make down
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
