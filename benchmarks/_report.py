"""What every benchmark result records besides its figures: the machine, its load, the time."""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path


def machine(load_before, load_after, **extra) -> dict:
    """CPUs and the load average before and after the timed part (the machines are shared)."""
    return {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after], **extra}


def measured_at() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def write(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
