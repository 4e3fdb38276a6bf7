"""Render and run the hand-written feature SQL of benchmarks/handwritten/.

The templates compute what the dbt feature layer computes, in as few DuckDB passes as we could
write, so that bench_floor.py can put the pipeline's build, the best hand-written SQL and the
scan floor side by side. Each template is a list of steps, each starting with ``-- step: name``.
"""
from __future__ import annotations

import resource
import time
from pathlib import Path

import jinja2
import yaml

TEMPLATES = Path(__file__).resolve().parent / "handwritten"
DBT_PROJECT = Path(__file__).resolve().parent.parent / "dbt_project" / "dbt_project.yml"
STEP_MARK = "-- step: "
WINDOWS = [7, 30, 90, 180, 365]


def campaign_response_days() -> int:
    """The response window the dbt project uses (vars.campaign_response_days)."""
    return int(yaml.safe_load(DBT_PROJECT.read_text())["vars"]["campaign_response_days"])


def render(template: str, *, raw: str, cutoffs: list[str], training_cutoffs: list[str],
           horizon_days: int) -> list[tuple[str, str]]:
    """(step name, SQL) pairs of ``handwritten/<template>.sql``.

    ``raw``: the schema holding the raw tables (e.g. ``wh.raw``); ``cutoffs``: the feature
    cutoffs as ISO dates (one_cutoff uses the last); ``training_cutoffs``: the label cutoffs.
    """
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined)
    cutoffs = sorted(cutoffs)
    text = env.get_template(f"{template}.sql").render(
        raw=raw, cutoffs=cutoffs, as_of=cutoffs[-1], training_cutoffs=sorted(training_cutoffs),
        horizon_days=horizon_days, response_days=campaign_response_days(), windows=WINDOWS)
    steps = []
    for chunk in text.split(STEP_MARK)[1:]:
        name, _, sql = chunk.partition("\n")
        steps.append((name.strip(), sql.strip()))
    return steps


def run(con, steps: list[tuple[str, str]]) -> dict:
    """Execute the steps in order; wall and CPU seconds of each and in total."""
    seconds, cpu = {}, {}
    for name, sql in steps:
        cpu_before, started = _cpu(), time.perf_counter()
        con.execute(sql)
        seconds[name] = round(time.perf_counter() - started, 3)
        cpu[name] = round(_cpu() - cpu_before, 3)
    return {"seconds": round(sum(seconds.values()), 3), "cpu_s": round(sum(cpu.values()), 3),
            "step_seconds": seconds, "step_cpu_s": cpu}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
