"""The scale-out profile, checked statically (Docker's engine does not run here)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
SECRET_WORDS = ("PASSWORD", "SECRET", "FERNET", "SALT", "KEY_ID", "ACCESS_KEY")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _env(service: dict) -> dict:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _command(service: dict) -> str:
    cmd = service.get("command") or ""
    return " ".join(cmd) if isinstance(cmd, list) else str(cmd)


def test_the_cluster_has_every_component(services):
    commands = {name: _command(s) for name, s in services.items()}
    for needle in ("api-server", "scheduler", "dag-processor", "triggerer", "celery worker"):
        assert any(needle in c for c in commands.values()), f"no service runs `airflow {needle}`"
    assert {"postgres", "redis", "minio", "mlflow", "init"} <= set(services)
    assert "mlflow server" in commands["mlflow"]


def test_celery_executor_on_postgres_and_redis(services):
    env = _env(services["airflow-scheduler"])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert "@postgres:5432/" in env["AIRFLOW__CELERY__RESULT_BACKEND"]


def test_mlflow_uses_postgres_and_minio(services):
    env = _env(services["mlflow"])
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")
    assert env["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert _env(services["airflow-worker"])["CHURNWATCH_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_long_running_services_have_health_checks(services):
    for name, service in services.items():
        if name == "init":
            assert service.get("restart") == "no"
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test"), f"{name} has no health check"
        assert check.get("interval") and check.get("retries"), name


def test_services_wait_for_healthy_dependencies_and_init(services):
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"):
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["redis"]["condition"] == "service_healthy"
        assert deps["init"]["condition"] == "service_completed_successfully"
    init = _command(services["init"])
    assert "airflow db migrate" in init and "pools set duckdb_writer 1" in init
    assert "ml.faces.orchestrate --manifest" in init


def test_no_secret_is_written_in_the_file(services):
    """Every secret-looking value is a ${VAR} reference filled from .env, never a literal."""
    for name, service in services.items():
        for key, value in _env(service).items():
            if any(word in key for word in SECRET_WORDS) and not key.endswith("_FILE"):
                assert value.startswith("${") and value.endswith("}"), f"{name}.{key} holds a literal"
        for url_key, value in _env(service).items():
            for userinfo in re.findall(r"://([^@/]+)@", value):
                assert set(re.sub(r"\$\{[^}]*\}", "", userinfo)) <= {":"}, (
                    f"{name}.{url_key} carries a literal credential")
    text = COMPOSE.read_text()
    assert "change-me" not in text


def test_required_secrets_fail_fast_when_missing():
    text = COMPOSE.read_text()
    for var in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "MINIO_ROOT_PASSWORD", "AIRFLOW_FERNET_KEY",
                "AIRFLOW_JWT_SECRET", "AIRFLOW_ADMIN_PASSWORD", "CHURNWATCH_PII_SALT",
                "MLFLOW_ADMIN_PASSWORD", "MLFLOW_FLASK_SECRET_KEY"):
        assert re.search(r"\$\{%s:\?" % var, text), f"{var} should be required (${{{var}:?...}})"


def test_env_example_lists_every_variable_and_env_is_ignored():
    text = "\n".join(line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text))  # $${X} is the container's variable
    example = (REPO / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", example, flags=re.M))
    assert used <= listed, f"missing from .env.example: {sorted(used - listed)}"
    ignored = (REPO / ".gitignore").read_text().split()
    assert ".env" in ignored


def test_ports_are_bound_to_localhost(services):
    for name, service in services.items():
        assert service.get("network_mode") != "host", f"{name} shares the host's network (every interface)"
        for port in service.get("ports", []):
            if isinstance(port, dict):  # the long syntax
                assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond localhost"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"


def test_mlflow_asks_for_a_login_and_the_tasks_have_it(services):
    """MLflow's basic-auth app with the admin from .env; its configuration is written at start from
    the backend store's URI (users in their own tables of that database)."""
    mlflow = services["mlflow"]
    command = _command(mlflow)
    assert re.search(r"mlflow server --app-name basic-auth\b", command), "MLflow runs without its login"
    env = _env(mlflow)
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"].startswith("${MLFLOW_ADMIN_PASSWORD:?")
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"].startswith("${MLFLOW_FLASK_SECRET_KEY:?")
    assert '> "$${MLFLOW_AUTH_CONFIG_PATH}"' in command and "database_uri = %s" in command
    assert "MLFLOW_BACKEND_STORE_URI" in command
    assert "/health" in " ".join(mlflow["healthcheck"]["test"])  # the one route basic-auth leaves open
    for name in ("airflow-worker", "airflow-scheduler", "init"):
        worker = _env(services[name])
        assert worker["MLFLOW_TRACKING_USERNAME"] == "${MLFLOW_ADMIN_USER:-admin}", name
        assert worker["MLFLOW_TRACKING_PASSWORD"].startswith("${MLFLOW_ADMIN_PASSWORD:?"), name


def test_the_image_builds_from_the_lock():
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert "requirements.lock" in dockerfile and "apache-airflow-providers-celery" in dockerfile
    assert (REPO / "docker" / "postgres" / "init-databases.sh").exists()
