"""Budget curve: how many customers a campaign contacts, and for what expected value, per budget.

    python benchmarks/bench_budget.py --warehouse W        # a scored warehouse (e.g. a `churnwatch run`)
    python benchmarks/bench_budget.py --warehouse W --out benchmarks/results/budget-S.json

``W`` is copied (decide writes its campaign); ``decide`` then runs on the copy's latest scoring run
with the offer catalog's priors, once per point of two curves:

- **money only** (``contact_share = 1``, no exploration: the policy before issue 19): contacts,
  spend and expected net value per ``campaign_budget``. On the tier-S shop the old default budget
  of 10,000 reached ~90% of the scored customers, so every policy contacted nearly everyone;
- **contact cap** (``campaign_budget`` 10,000, the defaults otherwise): the same per
  ``contact_share``, which is what now sizes a campaign (default 0.15).

Writes the figures (JSON) and the picture (PNG beside it): expected net value and spend against
the share of scored customers contacted, both curves, the defaults marked. The curve is a
property of the shop and the catalog, so it is measured here rather than drawn at every decide
(which runs at every scoring, up to tier M, and would pay ~30 policy solves and matplotlib for it).
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _report as report  # noqa: E402

BUDGETS = (0, 100, 250, 500, 1_000, 1_500, 2_000, 3_000, 5_000, 10_000, 20_000)
CONTACT_SHARES = (0.02, 0.05, 0.10, 0.15, 0.20, 0.30, 0.50, 0.75, 1.0)


def _latest_run(db: Path) -> tuple[dt.date, int]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("select max_by(as_of_date, as_of_date), max_by(horizon_days, as_of_date) "
                           "from scoring.churn_scores").fetchone()
    finally:
        con.close()


def _point(summary: dict, **knob) -> dict:
    return {**knob, "scored": summary["customers"], "contacted": summary["treated"],
            "contacted_share": round(summary["treated"] / summary["customers"], 4),
            "control": summary["control"], "exploration": summary["exploration"], "spend": summary["spend"],
            "expected_net_value": summary["expected_net_value"], "seconds": summary["seconds"]}


def measure(warehouse: Path) -> dict:
    from ml.core.settings import Settings
    from ml.stages.decide import decide

    as_of, horizon = _latest_run(warehouse / "churnwatch.duckdb")
    base = Settings.load(warehouse=warehouse, as_of=as_of, horizon_days=horizon, effect_model="prior")
    money_only = base.replace(contact_share=1.0, exploration_share=0.0)
    curves = {
        "money_only": [_point(decide(money_only.replace(campaign_budget=float(b))), campaign_budget=b)
                       for b in BUDGETS],
        "contact_cap": [_point(decide(base.replace(contact_share=s)), contact_share=s) for s in CONTACT_SHARES],
    }
    defaults = Settings.load()
    return {"as_of_date": as_of.isoformat(), "horizon_days": horizon, "curves": curves,
            "defaults": {"campaign_budget": defaults.campaign_budget, "contact_share": defaults.contact_share,
                         "exploration_share": defaults.exploration_share, "control_share": defaults.control_share},
            "default_point": _point(decide(base.replace(campaign_budget=defaults.campaign_budget)), default=True),
            "old_default_point": next(p for p in curves["money_only"] if p["campaign_budget"] == 10_000)}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (value_ax, spend_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, label, marker in (("money_only", "budget only (the policy before issue 19)", "o"),
                                ("contact_cap", "contact cap, budget 10,000 (now)", "s")):
        pts = result["curves"][name]
        x = [100 * p["contacted_share"] for p in pts]
        value_ax.plot(x, [p["expected_net_value"] for p in pts], marker=marker, label=label)
        spend_ax.plot(x, [p["spend"] for p in pts], marker=marker, label=label)
    for point, text in ((result["old_default_point"], "old default\n(budget 10,000)"),
                        (result["default_point"], f"default\n(contact share {result['defaults']['contact_share']:.0%})")):
        x = 100 * point["contacted_share"]
        value_ax.annotate(text, (x, point["expected_net_value"]), textcoords="offset points", xytext=(-10, 12),
                          ha="right", fontsize=8, arrowprops={"arrowstyle": "-", "lw": 0.6})
    for p in result["curves"]["money_only"]:
        spend_ax.annotate(f"{p['campaign_budget']:,}", (100 * p["contacted_share"], p["spend"]),
                          textcoords="offset points", xytext=(4, -10), fontsize=7)
    value_ax.set(xlabel="customers contacted, % of scored", ylabel="expected net value (sum)",
                 title="Expected net value of the campaign")
    spend_ax.set(xlabel="customers contacted, % of scored", ylabel="spend", title="Spend (labels: money budget)")
    for ax in (value_ax, spend_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Budget curve: {result['curves']['money_only'][0]['scored']:,} scored customers, "
                 f"as of {result['as_of_date']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True, help="a warehouse with scoring.churn_scores")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "budget-S.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    load_before = report.os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="churnwatch-budget-") as tmp:
        work = Path(tmp)
        shutil.copy2(args.warehouse / "churnwatch.duckdb", work / "churnwatch.duckdb")
        result = measure(work)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["source_warehouse"] = str(args.warehouse)
    result["machine"] = report.machine(load_before, report.os.getloadavg())
    result["measured_at"] = report.measured_at()
    report.write(args.out, result)
    plot(result, args.out.with_suffix(".png"))
    for name, pts in result["curves"].items():
        print(name)
        for p in pts:
            knob = {k: p[k] for k in ("campaign_budget", "contact_share") if k in p}
            print(f"  {knob}  contacted {p['contacted']:>6} ({p['contacted_share']:.1%})  spend {p['spend']:>9,.1f}"
                  f"  expected net value {p['expected_net_value']:>10,.1f}")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
