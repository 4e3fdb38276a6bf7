"""Plain helpers the tests import (``tests`` is on pytest's ``pythonpath``): no fixtures here.

- ``run``: the repo root, the shared as-of date and horizon, ``churnwatch(...)`` (the real CLI in a child).
- ``raw_tables``: raw.* laid out as ingest writes it, and a fast SQL shop (dbt tests, feature benchmark).
- ``quality``: derive broken inputs from a valid shop, copy a warehouse, fingerprint a publication.

Fixtures live in the conftest.py of the folder that uses them (tests/conftest.py: the session shop and run).
"""
