"""The local services' security without a live Airflow: the dbt docs server asks for the login,
MLflow's auth configuration keeps its users under the warehouse and no password in the file, and
the Airflow log server listens on localhost only, on the ports given.
(The live checks — every socket of ``make up``'s processes, MLflow's 401/200 — are in
tests/airflow/test_e2e_airflow.py.)"""
from __future__ import annotations

import base64
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from ml.faces.services import LocalAirflow, docs_server, mlflow_auth_config
from ml.core.settings import REPO_ROOT, Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, auth: tuple[str, str] | None = None) -> int:
    headers = {"Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode()} if auth else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_dbt_docs_need_the_login(tmp_path):
    (tmp_path / "index.html").write_text("<html>dbt docs</html>")
    (tmp_path / "catalog.json").write_text("{}")
    server = docs_server(tmp_path, _free_port(), "admin", "s3cret-password")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        url = f"http://{host}:{port}"
        assert _get(f"{url}/") == 401
        assert _get(f"{url}/catalog.json") == 401
        assert _get(f"{url}/catalog.json", ("admin", "wrong-password")) == 401
        assert _get(f"{url}/", ("admin", "s3cret-password")) == 200
        assert _get(f"{url}/catalog.json", ("admin", "s3cret-password")) == 200
    finally:
        server.shutdown()
        server.server_close()


def test_mlflow_auth_config_lives_under_the_warehouse_without_a_password(tmp_path):
    settings = Settings.load(warehouse=tmp_path / "wh")
    settings.mlflow_dir.mkdir(parents=True)
    path = mlflow_auth_config(settings, "admin")
    text = path.read_text()
    assert path.parent == settings.mlflow_dir
    assert f"database_uri = sqlite:///{settings.mlflow_dir / 'basic_auth.db'}" in text
    assert "admin_username = admin" in text
    assert "password" not in text  # the server takes it from MLFLOW_AUTH_ADMIN_PASSWORD


def test_log_server_listens_on_localhost_on_the_configured_ports(tmp_path):
    """Airflow 3.3's own log server binds every interface on fixed defaults; ours binds 127.0.0.1
    on [logging] worker_log_server_port and trigger_log_server_port."""
    psutil = pytest.importorskip("psutil")
    airflow = LocalAirflow(tmp_path / "wh", password="not-used-here-1234",
                           worker_log_port=_free_port(), trigger_log_port=_free_port())
    env = airflow.env()
    assert env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] == str(airflow.worker_log_port)
    assert env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] == str(airflow.trigger_log_port)
    proc = subprocess.Popen([sys.executable, "-m", "ml.faces.services", "serve-logs"], env=env, cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wanted = {airflow.worker_log_port, airflow.trigger_log_port}
        deadline, listening = time.monotonic() + 60, []
        while time.monotonic() < deadline and proc.poll() is None:
            listening = [c.laddr for c in psutil.Process(proc.pid).net_connections(kind="inet")
                         if c.status == psutil.CONN_LISTEN]
            if wanted <= {addr.port for addr in listening}:
                break
            time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert {addr.port for addr in listening} == wanted
        assert {addr.ip for addr in listening} == {"127.0.0.1"}
        # Airflow's log app answers (403: a log is served only with the API server's signed token)
        assert _get(f"http://127.0.0.1:{airflow.worker_log_port}/log/any.log") == 403
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()


def test_mlflow_admin_password_follows_the_secrets_file(tmp_path):
    """MLflow takes the configured admin password only when it creates the admin; a regenerated
    CHURNWATCH_ADMIN_PASSWORD must still be the one that logs in after the next `make up`."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    from ml.faces.services import set_mlflow_admin_password

    settings = Settings.load(warehouse=tmp_path / "wh")
    settings.mlflow_dir.mkdir(parents=True)
    set_mlflow_admin_password(settings, "admin", "first-password-123")  # no auth DB yet: nothing to do
    store = SqlAlchemyStore()
    store.init_db(f"sqlite:///{settings.mlflow_dir / 'basic_auth.db'}")
    store.create_user("admin", "first-password-123", is_admin=True)
    set_mlflow_admin_password(settings, "admin", "second-password-456")
    assert store.authenticate_user("admin", "second-password-456")
    assert not store.authenticate_user("admin", "first-password-123")
