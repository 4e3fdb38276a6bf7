"""Great Expectations suites as code, one module per gated layer or table.

Each module exposes ``build(params) -> list[Expectation]``; thresholds, dates and learnt bounds
arrive as run-time parameters so the same suite serves every run and every tier. ``ml.core.quality``
runs them; ``ml.stages.gates`` decides which table meets which suite with which parameters.
"""
