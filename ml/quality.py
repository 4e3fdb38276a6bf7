"""Great Expectations gates: run a suite from ``expectations/`` against a DataFrame.

A small task of our own in the spirit of the GX Airflow provider (which cannot be installed
beside Airflow 3.3): an ephemeral context, the dataframe datasource, and a failure that raises
``QualityGateError`` naming each failed expectation with sample offending values.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


class QualityGateError(RuntimeError):
    """A data-quality gate failed; nothing downstream may run."""


@dataclass
class GateResult:
    suite: str
    success: bool
    evaluated: int
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"suite": self.suite, "success": self.success, "evaluated": self.evaluated, "failures": self.failures}


def _describe_failure(res) -> str:
    cfg = res.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id",)}
    sample = res.result.get("partial_unexpected_list") or res.result.get("observed_value")
    count = res.result.get("unexpected_count")
    extra = f", {count} unexpected" if count is not None else ""
    return f"{cfg.type}({kwargs}){extra}, sample: {str(sample)[:200]}"


def validate_dataframe(df, suite_name: str, params: dict | None = None, raise_on_failure: bool = True) -> GateResult:
    """Validate ``df`` against suite ``expectations/<suite_name>.py``."""
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    module = importlib.import_module(f"expectations.{suite_name}")
    context = gx.get_context(mode="ephemeral")
    batch_def = (
        context.data_sources.add_pandas("churnwatch")
        .add_dataframe_asset(name=suite_name)
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
    for expectation in module.build(params or {}):
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite_name}_gate", data=batch_def, suite=suite)
    )
    result = definition.run(batch_parameters={"dataframe": df}, result_format="SUMMARY")
    failures = [_describe_failure(r) for r in result.results if not r.success]
    gate = GateResult(suite_name, bool(result.success), len(result.results), failures)
    log.info("GX gate %s: %s (%d expectations)", suite_name, "passed" if gate.success else "FAILED", gate.evaluated)
    if not gate.success and raise_on_failure:
        raise QualityGateError(f"quality gate '{suite_name}' failed: " + "; ".join(failures))
    return gate
