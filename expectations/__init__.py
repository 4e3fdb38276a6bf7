"""Great Expectations suites as code, one module per gated table.

Each module exposes ``build(params) -> list[Expectation]``; thresholds arrive as run-time
parameters so the same suite serves tier S and tier M. ``ml.quality`` runs them.
"""
