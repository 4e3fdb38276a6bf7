"""churnwatch: e-commerce churn early warning and precise retention.

Stages (ingest, quality, train, score, retention, publish, synth) each do one step and share
infrastructure modules (settings, warehouse, registry). Faces (the CLI and the Airflow DAGs)
are thin and call the same stage functions.
"""
