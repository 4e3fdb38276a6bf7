"""The ``churnwatch`` command: a thin face over the stages in ``ml/``.

``run`` executes the whole pipeline through the Airflow DAG; the stage commands (``ingest``,
``features``, ``validate``, ``train``, ``score``, ``decide``, ``marts``, ``publish``) call the very functions the DAG
tasks call, so a stage behaves the same either way. Errors end with one clear line and a
non-zero exit.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from pathlib import Path

from ml.core.settings import Settings


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _common(p: argparse.ArgumentParser, raw: bool = True) -> None:
    p.add_argument("--warehouse", type=Path, default=None, help="warehouse folder (default ./warehouse)")
    if raw:
        p.add_argument("--raw-dir", type=Path, default=None, help="folder with the raw exports")
        p.add_argument("--timestamp-format", action="append", default=None, metavar="[SOURCE=]FORMAT",
                       help="strptime format of a source's timestamps, e.g. orders=%%d/%%m/%%Y (repeatable; "
                            "no SOURCE: every source); ISO 8601 is always read")
    p.add_argument("--as-of", type=_date, default=None, help="as-of date (default: last order date)")
    p.add_argument("--horizon-days", type=int, default=None, help=f"churn horizon in days (default {Settings.horizon_days})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="churnwatch", description="churnwatch: churn early warning and precise retention for e-commerce shops.")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="generate a synthetic shop with known latent behaviour")
    g.add_argument("--customers", type=int, default=10_000)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--end-date", type=_date, default=dt.date(2025, 12, 31))
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--truth-as-of", type=_date, default=None)
    g.add_argument("--horizon-days", type=int, default=Settings.horizon_days)
    g.add_argument("--format", choices=("parquet", "csv"), default="parquet")

    m = sub.add_parser("simulate", help="apply CRM campaign files to a generated shop and continue it (closed-loop tests)")
    m.add_argument("--shop", type=Path, required=True, help="a shop written by `generate` (Parquet) or an earlier `simulate`")
    m.add_argument("--campaign", type=Path, action="append", default=[],
                   help="a CRM export (W/exports/crm/<campaign_id>.parquet or .csv); repeatable; none: the plain future")
    m.add_argument("--until", type=_date, required=True, help="last day of the new export")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--horizon-days", type=int, default=Settings.horizon_days, help="horizon of the campaign truth")
    m.add_argument("--truth-as-of", type=_date, default=None, help="also write the churn truth at this date")

    r = sub.add_parser("run", help="run the whole pipeline through the Airflow DAG")
    _common(r)
    r.add_argument("--retrain", action="store_true", help="train a challenger and run the promotion gate")
    r.add_argument("--campaign-budget", type=float, default=None)
    r.add_argument("--control-share", type=float, default=None)

    s = sub.add_parser("summary", help="print a short summary of the latest publication of one horizon")
    s.add_argument("--warehouse", type=Path, default=None)
    s.add_argument("--horizon-days", type=int, default=None,
                   help="the horizon to summarise (default: the horizon of the latest run)")

    q = sub.add_parser("sql", help="query the analyst catalog read-only (SQL from the arguments, or stdin)")
    q.add_argument("--warehouse", type=Path, default=None)
    q.add_argument("--max-rows", type=int, default=100, help="rows shown per result (default 100)")
    q.add_argument("query", nargs="*", help="SQL statements; none or '-': read them from stdin")

    for name, help_ in (
        ("ingest", "load raw exports into DuckDB raw.* (bad rows to quarantine.*)"),
        ("features", "dbt build of the point-in-time feature marts"),
        ("validate", "run the Great Expectations gates on features (and scores when present)"),
        ("train", "train a challenger, register it, run the promotion gate"),
        ("score", "score customers with the champion model"),
        ("decide", "segment the scored customers and pick the campaign audience under the budget"),
        ("marts", "dbt build of the crm and analytics marts (audience, campaign results, risk alerts)"),
        ("publish", "publish snapshots, the CRM export, and swap in the analyst catalog"),
    ):
        p = sub.add_parser(name, help=help_)
        _common(p, raw=(name == "ingest"))
        if name == "decide":
            p.add_argument("--campaign-budget", type=float, default=None)
            p.add_argument("--control-share", type=float, default=None)
        if name == "features":
            p.add_argument("--full-refresh", action="store_true",
                           help="rebuild every feature table from raw (after feature SQL changed, or history was rewritten)")
    return parser


def _settings(args) -> Settings:
    return Settings.load(
        warehouse=getattr(args, "warehouse", None),
        raw_dir=getattr(args, "raw_dir", None),
        timestamp_formats="; ".join(getattr(args, "timestamp_format", None) or []) or None,
        as_of=getattr(args, "as_of", None),
        horizon_days=getattr(args, "horizon_days", None),
        retrain=getattr(args, "retrain", None) or None,
        campaign_budget=getattr(args, "campaign_budget", None),
        control_share=getattr(args, "control_share", None),
    )


def dispatch(args) -> object:
    settings = _settings(args)
    if args.command == "generate":
        from ml.synth import generate

        return generate(args.out, customers=args.customers, seed=args.seed, end_date=args.end_date,
                        truth_as_of=args.truth_as_of, horizon_days=args.horizon_days, fmt=args.format)
    if args.command == "simulate":
        from ml.synth.simulate import simulate

        return simulate(args.shop, args.campaign, args.until, args.out, horizon_days=args.horizon_days,
                        truth_as_of=args.truth_as_of)
    if args.command == "run":
        from ml.faces.orchestrate import check_raw_dir, duration, run_dag, trigger_conf

        check_raw_dir(settings.raw_dir)  # at once, not after Airflow's start-up
        outcome = run_dag(settings, "churn_pipeline", trigger_conf(settings))
        if not outcome.ok:  # the one line in plain words, and where the whole story is
            print(f"churnwatch run: error: {outcome.error}\nfull log: {outcome.log_path}", file=sys.stderr)
            raise SystemExit(1)
        print(f"churnwatch run: done in {duration(outcome.seconds)}; analyst catalog: {settings.analytics_path}")
        return None
    if args.command == "summary":
        from ml.faces.summary import summarise

        print(summarise(settings, horizon_days=args.horizon_days))
        return None
    if args.command == "sql":
        from ml.core.catalog import run_sql

        text = " ".join(args.query)
        run_sql(settings.analytics_path, sys.stdin.read() if text in ("", "-") else text, max_rows=args.max_rows)
        return None
    if args.command == "ingest":
        from ml.stages.ingest import ingest

        return ingest(settings).to_dict()
    from ml.core.context import resolve_run

    settings = resolve_run(settings)  # stage commands without --as-of continue from the last ingest
    if args.command == "features":
        from ml.stages.features import build_features

        return build_features(settings, full_refresh=args.full_refresh)
    if args.command == "validate":
        from ml.stages.gates import gate_features

        return gate_features(settings).to_dict()
    if args.command == "train":
        from ml.stages.train import train

        return train(settings).to_dict()
    if args.command == "score":
        from ml.stages.score import score

        return score(settings)
    if args.command == "decide":
        from ml.stages.decide import decide

        return decide(settings)
    if args.command == "marts":
        from ml.stages.decide import build_marts

        return build_marts(settings)
    if args.command == "publish":
        from ml.stages.publish import publish

        return publish(settings)
    raise SystemExit(f"unknown command {args.command}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = dispatch(args)
    except SystemExit:
        raise
    except Exception as exc:  # one clear line, non-zero exit; -v shows the traceback
        if args.verbose:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"churnwatch {args.command}: error: {first}", file=sys.stderr)
        return 1
    if result is not None:
        print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
