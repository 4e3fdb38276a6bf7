"""Run churnwatch DAGs through real Airflow (``dag.test()``) from the command line.

``churnwatch run`` must behave exactly like a run triggered in the Airflow UI, so it executes the
same DAG file with the same params. Airflow reads its configuration from the environment at
import time, hence the two halves: ``airflow_env`` prepares a child environment (an embedded
SQLite Airflow under the warehouse unless ``AIRFLOW_HOME`` is set), and ``main`` — run in that
child — migrates the metadata DB once and calls ``dag.test(run_conf=...)``.

What a person sees is kept apart from what Airflow says: the child writes its whole output to
``<warehouse>/logs/run-<UTC time>.log``, the tasks append their start, end, retry and failure to
a progress file beside it (``ml.faces.airflow_tasks``, through ``PROGRESS_ENV``), and ``run_dag`` follows
both and prints one line per finished stage (stage, seconds, rows), a progress bar of dbt's nodes
on a terminal, and at a failure the task's plain message and the log's path.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ml.core.errors import InputError
from ml.core.settings import REPO_ROOT, Settings

DAGS_FOLDER = REPO_ROOT / "dags"
PROGRESS_ENV = "CHURNWATCH_RUN_PROGRESS"  # the progress file the tasks of this run append to
KEEP_RUN_LOGS = 30  # newest run logs kept under <warehouse>/logs

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
        from ml.core.dbt import run_dbt

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


# the Settings fields the trigger form carries (dag.test(run_conf=...)): they reach the run that way only
FORM_FIELDS = {"as_of": "as_of_date", "horizon_days": "horizon_days", "retrain": "retrain",
               "campaign_budget": "campaign_budget", "control_share": "control_share",
               "raw_dir": "raw_dir", "warehouse": "warehouse"}


def trigger_conf(settings: Settings) -> dict:
    """The trigger form's values for a run of these Settings (what a person fills in the UI)."""
    conf = {param: getattr(settings, field) for field, param in FORM_FIELDS.items()}
    conf["as_of_date"] = settings.as_of.isoformat() if settings.as_of else None
    conf["raw_dir"], conf["warehouse"] = str(settings.raw_dir), str(settings.warehouse)
    return conf


def airflow_env(settings: Settings) -> dict[str, str]:
    """The child's environment: Airflow's configuration, and the Settings the form does not carry
    (e.g. ``--timestamp-format``) as CHURNWATCH_* variables, which the run's first task reads."""
    env = bytecode_cache_env(dict(os.environ))
    env.setdefault("AIRFLOW_HOME", str(settings.warehouse / "airflow"))
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env.setdefault("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "120")
    env.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
    env.update(settings.as_env(exclude=tuple(FORM_FIELDS)))
    return env


def check_raw_dir(raw_dir: Path | None) -> None:
    """Refuse at once a raw folder that is missing or holds no orders (the one required source),
    before Airflow spends its start-up on a run that cannot succeed."""
    from ml.core.contract import SOURCES
    from ml.stages.ingest import find_source_files

    if raw_dir is None:
        raise InputError("--raw-dir is required: the folder with the shop's exports (orders.csv or orders.parquet at least)")
    if not Path(raw_dir).is_dir():
        raise InputError(f"--raw-dir {raw_dir}: no such folder")
    for name, source in SOURCES.items():
        if source.required and not find_source_files(Path(raw_dir), name):
            raise InputError(f"--raw-dir {raw_dir}: the required source '{name}' is missing "
                             f"(expected {name}.csv, {name}.parquet or a folder {name}/)")


@dataclass(frozen=True)
class RunOutcome:
    ok: bool
    log_path: Path
    seconds: float
    error: str | None = None  # plain words: the first failed task's message


def run_dag(settings: Settings, dag_id: str, conf: dict, out: TextIO | None = None) -> RunOutcome:
    """Run ``dag_id`` to completion in a child process whose whole output goes to a log file under
    the warehouse, printing one line per finished stage to ``out``."""
    out = out or sys.stdout
    env = airflow_env(settings)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    log_dir = settings.warehouse / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    log_path, progress_path = log_dir / f"run-{stamp}.log", log_dir / f"run-{stamp}.progress.jsonl"
    progress_path.touch()
    env[PROGRESS_ENV] = str(progress_path)
    env["PYTHONUNBUFFERED"] = "1"  # the log follows the run line by line (dbt's progress, the task starts)
    _prune_run_logs(log_dir)
    cmd = [sys.executable, "-m", "ml.faces.orchestrate", dag_id, json.dumps(conf, default=str)]
    print(f"churnwatch run: {dag_id}, horizon {conf.get('horizon_days')} days, as of "
          f"{conf.get('as_of_date') or 'the last order date'}; full log: {log_path}", file=out, flush=True)
    started = time.time()
    with open(log_path, "wb") as log_file:
        child = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT)
        view = ProgressView(log_path, progress_path, out, started)
        try:
            while child.poll() is None:
                view.follow()
                time.sleep(0.25)
        except KeyboardInterrupt:  # the child got the same signal: let it stop, then stop too
            child.wait()
            raise
        view.follow()
    view.close()
    seconds = time.time() - started
    if child.returncode == 0:
        return RunOutcome(True, log_path, seconds)
    error = (view.first_error or view.child_error
             or f"the run stopped before it finished (exit code {child.returncode}); the log ends with: {_last_line(log_path)}")
    return RunOutcome(False, log_path, seconds, error)


def duration(seconds: float) -> str:
    """``8.2 s``, ``2 min 24 s``: how long, as a person says it."""
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60)} s"


# dbt's per-node result lines: "07:34:57  12 of 69 OK created sql table model ..." (START: not done yet)
_DBT_NODE = re.compile(r"^\d\d:\d\d:\d\d\s+(\d+) of (\d+) (\S+)")


class ProgressView:
    """Follows the run's progress file and log; prints one line per finished stage and, on a
    terminal, a live bar of the running stage (dbt nodes done out of all, else elapsed time)."""

    def __init__(self, log_path: Path, progress_path: Path, out: TextIO, started: float):
        self.log, self.progress = open(log_path, "rb"), open(progress_path, "rb")
        self.out, self.started = out, started
        self.tty = hasattr(out, "isatty") and out.isatty()
        self.stage: str | None = None
        self.stage_started = started
        self.dbt_done, self.dbt_total = 0, 0
        self.bar, self._bar_kind = None, None
        self.first_error: str | None = None
        self.child_error: str | None = None
        self._partial = {id(self.log): b"", id(self.progress): b""}

    def follow(self) -> None:
        for event in map(json.loads, self._new_lines(self.progress)):
            self._read_log()  # the log lines before an event were written before it
            self._on_event(event)
        self._read_log()
        self._update_bar()  # also ticks the elapsed time of a stage without a count

    def _read_log(self) -> None:
        """Count dbt's finished nodes (dbt runs only inside a stage; the count resets when it ends)."""
        for line in self._new_lines(self.log):
            match = _DBT_NODE.match(line)
            if match and match.group(3) != "START":
                self.dbt_done, self.dbt_total = self.dbt_done + 1, int(match.group(2))

    def _new_lines(self, fh) -> list[str]:
        data = self._partial[id(fh)] + fh.read()
        *lines, self._partial[id(fh)] = data.split(b"\n")
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines if line.strip()]

    def _on_event(self, event: dict) -> None:
        # seconds from the events' own clock: the view may read them a moment late
        kind, task, now = event.get("event"), event.get("task_id"), float(event.get("at") or time.time())
        if kind == "airflow_ready":
            self._line("airflow start-up", now - self.started, "")
        elif kind == "started":
            self.stage, self.stage_started = task, now
        elif kind == "finished":
            note = event.get("note") or (f"{self.dbt_done}/{self.dbt_total} dbt models and tests" if self.dbt_total else "")
            self._line(task, now - self.stage_started, note)
        elif kind == "retrying":
            self._line(task, now - self.stage_started, f"failed (try {event.get('try_number')}), will retry: {event.get('error')}")
        elif kind == "failed":
            self._line(task, now - self.stage_started, "FAILED")
            # an input fault's message is the whole story; anything else names the stage and the tries
            message = event.get("error") if event.get("kind") == "data_quality" else \
                f"{task} failed on try {event.get('try_number')}: {event.get('error')}"
            self.first_error = self.first_error or message
        elif kind == "dag_end" and event.get("error"):
            self.child_error = event["error"]

    def _update_bar(self) -> None:
        """On a terminal: the running stage as a bar of dbt nodes done, or its elapsed time."""
        if not self.tty or self.stage is None:
            return
        from tqdm import tqdm

        kind = (self.stage, bool(self.dbt_total))
        if self.bar is None or self._bar_kind != kind:
            self._close_bar()
            if self.dbt_total:
                self.bar = tqdm(desc=f"  {self.stage}", total=self.dbt_total, file=self.out, leave=False,
                                bar_format="{desc} |{bar:30}| {n_fmt}/{total_fmt} dbt models and tests {elapsed}")
            else:
                self.bar = tqdm(desc=f"  {self.stage}", bar_format="{desc} {elapsed}", file=self.out, leave=False)
            self._bar_kind = kind
        if self.dbt_total:
            self.bar.total, self.bar.n = self.dbt_total, self.dbt_done
        self.bar.refresh()

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar, self._bar_kind = None, None

    def _line(self, stage: str, seconds: float, note: str) -> None:
        """One finished stage; the next one starts from no stage and no dbt count."""
        self._close_bar()
        self.stage, self.dbt_done, self.dbt_total = None, 0, 0
        print(f"  {stage:<20} {duration(seconds):>10}  {note}".rstrip(), file=self.out, flush=True)

    def close(self) -> None:
        self._close_bar()
        self.log.close()
        self.progress.close()


def _last_line(path: Path) -> str | None:
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else None


def _prune_run_logs(log_dir: Path) -> None:
    """Keep the newest ``KEEP_RUN_LOGS`` run logs (and their progress files)."""
    for old in sorted(log_dir.glob("run-*.log"))[:-KEEP_RUN_LOGS or None]:
        old.unlink(missing_ok=True)
        old.with_suffix(".progress.jsonl").unlink(missing_ok=True)


def _progress(event: str, **fields) -> None:
    """Append one line to the run's progress file (the parent shows it); a no-op without one."""
    path = os.environ.get(PROGRESS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"event": event, "at": time.time(), **fields}, default=str) + "\n")


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
        path, err = next(iter(bag.import_errors.items()))
        _progress("dag_end", state="import_error", error=f"the DAG file {path} does not import: {err.strip().splitlines()[-1]}")
        return 2
    dag = bag.dags[dag_id]
    _progress("airflow_ready")
    run = dag.test(run_conf=conf)
    state = str(getattr(run, "state", "unknown"))
    failed = [ti.task_id for ti in run.get_task_instances() if str(ti.state) not in ("success", "skipped")] if run else []
    print(f"churnwatch: DAG {dag_id} finished with state {state}" + (f"; not successful: {', '.join(failed)}" if failed else ""))
    if state.endswith("success"):
        _progress("dag_end", state=state)
        return 0
    alerts = _alerts_for(conf, getattr(run, "run_id", None))[:1]  # the first failure is the cause
    for alert in alerts:
        print(f"churnwatch: error: {alert['task_id']}: {alert['error']}", file=sys.stderr)
    _progress("dag_end", state=state, failed=failed,
              error=alerts[0]["error"] if alerts else f"the run ended {state}; not successful: {', '.join(failed) or 'none'}")
    return 1


def _alerts_for(conf: dict, run_id: str | None) -> list[dict]:
    """The alert lines the failure callback recorded for this run, oldest first."""
    from ml.core.settings import settings_from_params

    path = settings_from_params(conf).warehouse / "alerts" / "alerts.jsonl"
    if run_id is None or not path.exists():
        return []
    alerts = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [a for a in alerts if a.get("run_id") == run_id]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
