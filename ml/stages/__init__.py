"""The pipeline's stages, one module per step: ingest → features → gates → train → score → decide →
publish (+ export). Each is called the same way by the CLI and by the Airflow tasks; stages use
``ml.core`` and ``ml.model`` and never import a face."""
