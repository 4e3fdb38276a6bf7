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


def airflow_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
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
    dag_id, conf = argv[0], json.loads(argv[1])
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
    return 0 if state.endswith("success") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
