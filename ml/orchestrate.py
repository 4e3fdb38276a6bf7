"""Run churnwatch DAGs through real Airflow (``dag.test()``) from the command line.

``churnwatch run`` must behave exactly like a run triggered in the Airflow UI, so it executes the
same DAG file with the same params. Airflow reads its configuration from the environment at
import time, hence the two halves: ``airflow_env`` prepares a child environment (an embedded
SQLite Airflow under the warehouse unless ``AIRFLOW_HOME`` is set), and ``main`` — run in that
child — migrates the metadata DB once and calls ``dag.test(run_conf=...)``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ml.settings import REPO_ROOT, Settings

DAGS_FOLDER = REPO_ROOT / "dags"
# the compiled dbt manifest Cosmos renders the dbt task groups from (gitignored, like all of target/)
MANIFEST_PATH = Path(os.environ.get("CHURNWATCH_DBT_MANIFEST", REPO_ROOT / "dbt_project" / "target" / "cosmos_manifest.json"))
_DBT_SOURCES = ("models", "macros", "seeds", "snapshots", "tests", "analyses", "dbt_project.yml", "profiles.yml")


def _newest_dbt_source(project_dir: Path) -> float:
    newest = 0.0
    for name in _DBT_SOURCES:
        path = project_dir / name
        paths = [path] if path.is_file() else path.rglob("*") if path.is_dir() else []
        newest = max([newest, *(p.stat().st_mtime for p in paths if p.is_file())])
    return newest


def ensure_manifest(project_dir: Path = REPO_ROOT / "dbt_project", force: bool = False) -> Path:
    """Compile the dbt manifest (``dbt parse``) when it is missing or older than the project.

    Cosmos renders each dbt model and test as an Airflow task from this file, so nothing runs
    while Airflow parses the DAGs. Safe to call from several processes: one parses under a file
    lock, and the manifest is swapped in atomically.
    """
    import fcntl
    import shutil
    import tempfile

    if not force and MANIFEST_PATH.exists() and MANIFEST_PATH.stat().st_mtime >= _newest_dbt_source(project_dir):
        return MANIFEST_PATH
    MANIFEST_PATH.parent.mkdir(parents=True, exist_ok=True)
    with open(MANIFEST_PATH.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and MANIFEST_PATH.exists() and MANIFEST_PATH.stat().st_mtime >= _newest_dbt_source(project_dir):
            return MANIFEST_PATH
        from ml.transform import run_dbt

        scratch = Path(tempfile.mkdtemp(prefix="dbt-parse-", dir=MANIFEST_PATH.parent))
        try:
            settings = Settings.load(warehouse=scratch, dbt_project_dir=project_dir)
            run_dbt(settings, ["parse"])
            os.replace(scratch / "dbt" / "target" / "manifest.json", MANIFEST_PATH)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return MANIFEST_PATH


def bytecode_cache_env(env: dict[str, str]) -> dict[str, str]:
    """Let Airflow's task processes reuse compiled bytecode (a private cache, nothing written into
    the venv): with PYTHONDONTWRITEBYTECODE every task process would recompile Airflow, GX, MLflow
    and dbt from source, tens of seconds per task."""
    import tempfile

    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.setdefault("PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / f"churnwatch-pycache-{os.getuid()}"))
    return env


def airflow_env(settings: Settings) -> dict[str, str]:
    env = bytecode_cache_env(dict(os.environ))
    env.setdefault("AIRFLOW_HOME", str(settings.warehouse / "airflow"))
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env.setdefault("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "120")
    env.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
    env.update(settings.as_env())
    return env


def run_dag(settings: Settings, dag_id: str, conf: dict) -> int:
    """Run ``dag_id`` to completion in a child process; returns its exit code (0 = success)."""
    env = airflow_env(settings)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "ml.orchestrate", dag_id, json.dumps(conf, default=str)]
    return subprocess.run(cmd, env=env, cwd=REPO_ROOT).returncode


def _ensure_metadata_db() -> None:
    home = Path(os.environ["AIRFLOW_HOME"])
    marker = home / ".churnwatch-db-migrated"
    if marker.exists():
        return
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, stdout=subprocess.DEVNULL)
    marker.write_text("ok\n")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--manifest"]:
        print(ensure_manifest(force="--force" in argv))
        return 0
    dag_id, conf = argv[0], json.loads(argv[1])
    ensure_manifest()
    _ensure_metadata_db()
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    if bag.import_errors:
        for path, err in bag.import_errors.items():
            print(f"DAG import error in {path}: {err.strip().splitlines()[-1]}", file=sys.stderr)
        return 2
    dag = bag.dags[dag_id]
    run = dag.test(run_conf=conf)
    state = str(getattr(run, "state", "unknown"))
    failed = [ti.task_id for ti in run.get_task_instances() if str(ti.state) not in ("success", "skipped")] if run else []
    print(f"churnwatch: DAG {dag_id} finished with state {state}" + (f"; not successful: {', '.join(failed)}" if failed else ""))
    if state.endswith("success"):
        return 0
    for alert in _alerts_for(conf, getattr(run, "run_id", None))[:1]:  # the first failure is the cause
        print(f"churnwatch: error: {alert['task_id']}: {alert['error']}", file=sys.stderr)
    return 1


def _alerts_for(conf: dict, run_id: str | None) -> list[dict]:
    """The alert lines the failure callback recorded for this run, oldest first."""
    from ml.settings import settings_from_params

    path = settings_from_params(conf).warehouse / "alerts" / "alerts.jsonl"
    if run_id is None or not path.exists():
        return []
    alerts = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [a for a in alerts if a.get("run_id") == run_id]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
