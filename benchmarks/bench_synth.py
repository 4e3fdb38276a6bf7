"""Benchmark the synthetic shop generator per scale tier.

    python benchmarks/bench_synth.py --tiers S,M

Each tier runs in its own child process, so its peak RSS is its own; the child reports wall
seconds, CPU seconds (user + system; on a shared box these tell the work done better than the
wall clock), per-stage seconds and rows per source. Results are merged into
``benchmarks/results/synth.json`` (tiers not run keep their last figures).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "synth.json"
TIERS = {"S": 10_000, "M": 1_000_000, "L": 10_000_000}
END_DATE = dt.date(2025, 12, 31)
HORIZON = 90


def run_child(customers: int, out: str, seed: int, fmt: str, truth: bool) -> None:
    """In the child: generate, then print one JSON line of stats."""
    sys.path.insert(0, str(REPO))
    from ml.synth import generate

    cpu0 = os.times()
    stats = generate(Path(out), customers=customers, seed=seed, end_date=END_DATE,
                     truth_as_of=END_DATE - dt.timedelta(days=HORIZON) if truth else None,
                     horizon_days=HORIZON, fmt=fmt)
    cpu1 = os.times()
    stats["cpu_seconds"] = round((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system), 2)
    stats["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    stats["bytes_on_disk"] = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
    print(json.dumps(stats))


def bench_tier(tier: str, seed: int, fmt: str, truth: bool, keep: Path | None) -> dict:
    out = keep / tier if keep else Path(tempfile.mkdtemp(prefix=f"synth_{tier}_"))
    cmd = [sys.executable, __file__, "--child", str(TIERS[tier]), "--out", str(out),
           "--seed", str(seed), "--format", fmt] + ([] if truth else ["--no-truth"])
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    finally:
        if keep is None:
            shutil.rmtree(out, ignore_errors=True)
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "customers": TIERS[tier], "seed": seed, "format": fmt, "with_truth": truth,
        "seconds": stats["seconds"], "process_seconds": round(time.perf_counter() - t0, 2),
        "cpu_seconds": stats["cpu_seconds"], "peak_rss_mb": stats["peak_rss_mb"],
        "stage_seconds": stats["stage_seconds"], "rows": stats["rows"],
        "bytes_on_disk": stats["bytes_on_disk"], "truth": stats["truth"],
        "load_average_at_start": round(load, 2),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiers", default="S", help="comma-separated: S, M, L")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--format", default="parquet", choices=("parquet", "csv"))
    ap.add_argument("--no-truth", action="store_true", help="skip the _truth files")
    ap.add_argument("--keep", type=Path, default=None, help="keep generated shops under this folder")
    ap.add_argument("--out", type=str, help=argparse.SUPPRESS)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        run_child(args.child, args.out, args.seed, args.format, not args.no_truth)
        return

    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results.setdefault("tiers", {})
    for tier in [t.strip().upper() for t in args.tiers.split(",") if t.strip()]:
        if tier not in TIERS:
            raise SystemExit(f"unknown tier {tier!r}; choose from {', '.join(TIERS)}")
        r = bench_tier(tier, args.seed, args.format, not args.no_truth, args.keep)
        r["measured_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        results["tiers"][tier] = r
        print(f"tier {tier}: {r['seconds']:.1f} s wall ({r['cpu_seconds']:.1f} s CPU), "
              f"peak RSS {r['peak_rss_mb']:.0f} MB, rows {r['rows']}", flush=True)
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
