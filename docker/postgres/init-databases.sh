#!/usr/bin/env bash
# Runs once, when the PostgreSQL volume is first created: one database for the Airflow metadata
# (POSTGRES_DB) and one for the MLflow tracking store and registry, each with its own owner.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE USER ${MLFLOW_DB_USER} WITH PASSWORD '${MLFLOW_DB_PASSWORD}';
CREATE DATABASE ${MLFLOW_DB_NAME} OWNER ${MLFLOW_DB_USER};
SQL
