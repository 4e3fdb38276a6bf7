"""`make bench`: run every benchmark in this folder, one after another, at the requested tier.

Each ``bench_*.py`` writes its own JSON under ``benchmarks/results/``; they run sequentially
because the machine is small and timings from overlapping runs would mean nothing.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="M", help="S, M or L (default M)")
    parser.add_argument("--only", default="", help="comma-separated bench names, e.g. synth,features")
    args = parser.parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    failures = []
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if only and name not in only:
            continue
        tier_flag = ["--tiers", args.tier] if name == "synth" else ["--tier", args.tier]
        if name in ("ceiling", "intervention_labels"):  # tier-S studies (the shop's hidden state; four trainings)
            tier_flag = ["--tier", "S"]
        started = time.perf_counter()
        print(f"== {name} (tier {args.tier})", flush=True)
        code = subprocess.run([sys.executable, str(script), *tier_flag], cwd=HERE.parent).returncode
        print(f"== {name}: exit {code} in {time.perf_counter() - started:.0f}s", flush=True)
        if code:
            failures.append(name)
    print("results in", HERE / "results")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
