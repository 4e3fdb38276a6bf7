"""Features: the point-in-time feature layer, built by dbt (``build``), rebuilt exactly where a
re-export or a feature-SQL change made it stale (``rebuild``)."""
from .build import DAILY_TABLES, FEATURE_MARTS, build_features

__all__ = ["DAILY_TABLES", "FEATURE_MARTS", "build_features"]
