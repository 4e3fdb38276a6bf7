"""Publish: Parquet snapshots and the analyst catalog, swapped atomically (``snapshot``), and the
run's campaign file for the CRM (``crm_export``), written in the same step."""
from .snapshot import KEEP_MANIFESTS, PUBLISHED, build_catalog, publish, read_manifest

__all__ = ["KEEP_MANIFESTS", "PUBLISHED", "build_catalog", "publish", "read_manifest"]
