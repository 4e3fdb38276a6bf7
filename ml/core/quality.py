"""Great Expectations gates: run suites from ``expectations/`` against DataFrames, keep Data Docs.

A small task of our own in the spirit of the GX Airflow provider (which cannot be installed
beside Airflow 3.3): an ephemeral context, the dataframe datasource, one validation definition
per table and one checkpoint per gate, and a failure that raises ``QualityGateError`` naming each
failed expectation with sample offending rows (their key columns and the offending value).

Data Docs: every gate of a run writes into one site, ``<warehouse>/data_docs/<run id>/index.html``
(validation results are kept beside it in ``_results/`` so the index lists all of the run's
gates); ``<warehouse>/data_docs/index.html`` links the runs, newest first, and only the last
``data_docs_keep_runs`` run folders are kept.
"""
from __future__ import annotations

import html
import importlib
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ml.core.errors import InputError

log = logging.getLogger(__name__)
# GX logs 200+ "Skipping registering function …" lines at INFO while it imports: chatter, not news
logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)

SAMPLE_ROWS = 5  # offending rows shown per failed expectation


class QualityGateError(InputError):
    """A data-quality gate failed; nothing downstream may run (no retry: the data must change)."""


@dataclass(frozen=True)
class Check:
    """One table to validate: its frame, its suite (module in ``expectations/``) and run-time params."""

    name: str  # the table, e.g. "raw_orders" — names the validation definition and the suite
    frame: object  # pandas.DataFrame
    suite: str  # module under expectations/
    params: dict = field(default_factory=dict)
    keys: tuple[str, ...] = ()  # columns that identify an offending row in messages


@dataclass
class GateResult:
    gate: str
    success: bool
    evaluated: int
    failures: list[str] = field(default_factory=list)
    data_docs: str | None = None

    def to_dict(self) -> dict:
        return {"gate": self.gate, "success": self.success, "evaluated": self.evaluated,
                "failures": self.failures, "data_docs": self.data_docs}


# ---- describing failures ------------------------------------------------------------------


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_failure(table: str, res) -> str:
    """``table: expectation(column, bounds) — n of m rows unexpected, e.g. customer_id=7 amount=-3``."""
    cfg = res.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id", "result_format") and v is not None}
    args = ", ".join(f"{k}={_short(v)}" for k, v in kwargs.items())
    result = res.result or {}
    if result.get("unexpected_count") is not None:
        what = f"{result['unexpected_count']} of {result.get('element_count')} rows unexpected"
        rows = result.get("partial_unexpected_index_list") or []
        if rows and isinstance(rows[0], dict):
            sample = "; ".join(" ".join(f"{k}={_short(v)}" for k, v in row.items()) for row in rows[:SAMPLE_ROWS])
        else:
            sample = ", ".join(_short(v) for v in (result.get("partial_unexpected_list") or [])[:SAMPLE_ROWS])
        what += f", e.g. {sample}" if sample else ""
    else:
        what = f"observed {_short(result.get('observed_value'))}"
    return f"{table}: {cfg.type}({args}) — {what}"


# ---- Data Docs ----------------------------------------------------------------------------


def safe_run_id(run_id: str) -> str:
    """A folder name for a run id (Airflow's contain ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("_") or "manual"


def _configure_docs(context, run_dir: Path) -> None:
    """Results on disk under the run's folder, one Data Docs site rendered from them."""
    context.add_store(
        "churnwatch_results",
        {"class_name": "ValidationResultsStore",
         "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(run_dir / "_results")}},
    )
    context.variables.validation_results_store_name = "churnwatch_results"
    context.add_data_docs_site(
        site_name="churnwatch",
        site_config={"class_name": "SiteBuilder",
                     "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                     "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(run_dir)}},
    )


def _refresh_docs_index(docs_root: Path, keep_runs: int) -> None:
    """Prune old run folders and write ``data_docs/index.html`` linking the remaining runs."""
    runs = sorted((p for p in docs_root.iterdir() if (p / "index.html").is_file()),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for old in runs[keep_runs:]:
        shutil.rmtree(old, ignore_errors=True)
    items = "\n".join(f'<li><a href="{html.escape(p.name)}/index.html">{html.escape(p.name)}</a></li>'
                      for p in runs[:keep_runs])
    page = f"<!doctype html><meta charset=utf-8><title>churnwatch Data Docs</title>\n<h1>churnwatch runs</h1>\n<ul>\n{items}\n</ul>\n"
    tmp = docs_root / ".index.html.tmp"
    tmp.write_text(page)
    tmp.replace(docs_root / "index.html")


# ---- running a gate -------------------------------------------------------------------------


def run_gate(gate: str, checks: list[Check], docs_root: Path, run_id: str, keep_runs: int = 30,
             raise_on_failure: bool = True) -> GateResult:
    """Validate every check in one checkpoint, render Data Docs, raise on failure."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    run_dir = docs_root / safe_run_id(run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    _configure_docs(context, run_dir)
    source = context.data_sources.add_pandas("churnwatch")

    definitions, frames, keys = [], {}, {}
    for check in checks:
        suite = context.suites.add(gx.ExpectationSuite(name=check.name))
        module = importlib.import_module(f"expectations.{check.suite}")
        for expectation in module.build(check.params):
            suite.add_expectation(expectation)
        batch = source.add_dataframe_asset(name=check.name).add_batch_definition_whole_dataframe("whole")
        definitions.append(context.validation_definitions.add(
            gx.ValidationDefinition(name=check.name, data=batch, suite=suite)))
        frames[check.name], keys[check.name] = check.frame, [k for k in check.keys if k in check.frame.columns]

    failures, evaluated, success = [], 0, True
    for definition in definitions:  # a checkpoint per table: batch parameters carry one dataframe
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"{gate}__{definition.name}",
            validation_definitions=[definition],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_ROWS,
                           "unexpected_index_column_names": keys[definition.name]},
        ))
        outcome = checkpoint.run(batch_parameters={"dataframe": frames[definition.name]},
                                 run_id=gx.RunIdentifier(run_name=safe_run_id(run_id)))
        for result in outcome.run_results.values():
            evaluated += len(result.results)
            success = success and bool(result.success)
            failures += [describe_failure(definition.name, r) for r in result.results if not r.success]

    context.build_data_docs(site_names=["churnwatch"])  # once for all tables: rendering is the slow part
    _refresh_docs_index(docs_root, keep_runs)
    docs = (run_dir / "index.html").as_uri()
    gate_result = GateResult(gate, success, evaluated, failures, docs)
    log.info("GX gate %s: %s (%d expectations on %d tables); Data Docs: %s", gate,
             "passed" if success else "FAILED", evaluated, len(checks), docs)
    if not success and raise_on_failure:
        more = f" (+{len(failures) - 1} more failed expectations)" if len(failures) > 1 else ""
        raise QualityGateError(
            f"quality gate '{gate}' failed: {failures[0]}{more}; Data Docs: {docs}\n" + "\n".join(failures)
        )
    return gate_result
