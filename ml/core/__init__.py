"""Infrastructure every layer may use: run settings, the raw contract, errors, DuckDB and dbt access,
the MLflow registry, Great Expectations runs and the analyst catalog. Imports nothing above it."""
